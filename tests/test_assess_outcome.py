"""``assess.outcome`` — the outcome the engine branches on — is the outcome ``assess`` gives.

The engine asks ``outcome`` first (to decide whether to probe anonymously and list tags) and
builds the verdict once; these cases pin that the two never disagree, including the refusal that
becomes ``undetermined`` while kubelet would try credentials pullguard could not read.
"""

from __future__ import annotations

import pytest

from tests.test_identity_plan import AMD, plan, workload
from webhook.core.assess import NOT_TRIED, ManifestInfo, Observation, assess, outcome
from webhook.core.identity import ImagePlan, SecretResult, Unavailable
from webhook.core.nodes import NodeGroup
from webhook.core.platforms import parse_platform

ARM = NodeGroup("arm", parse_platform("linux/arm64"))
AMD_ONLY = ManifestInfo("application/vnd.oci.image.index.v1+json", True, (parse_platform("linux/amd64"),))
PULLABLE = Observation("pullable", 200, digest="sha256:" + "a" * 64, manifest=AMD_ONLY)


def _image(
    secrets: dict[str, SecretResult] | None = None, groups: tuple[NodeGroup, ...] = (AMD,)
) -> ImagePlan:
    names = list(secrets) if secrets is not None else None
    obj = workload("Pod", ["registry.example:5000/team/app:1.0"], names)
    return plan(obj, secrets, groups=groups).images[0]


CASES = [
    pytest.param(_image(), [[PULLABLE]], "pullable", id="pullable"),
    pytest.param(_image(), [[Observation("not-found", 404)]], "not-found", id="not-found"),
    pytest.param(_image(), [[Observation("unauthorized", 401)]], "unauthorized", id="unauthorized"),
    pytest.param(_image(), [[Observation("unreachable")]], "unreachable", id="unreachable"),
    pytest.param(_image(), [[NOT_TRIED]], "undetermined", id="nothing-tried"),
    pytest.param(
        _image(groups=(AMD, ARM)), [[PULLABLE], [PULLABLE]], "platform-mismatch", id="no-arm64-child"
    ),
    pytest.param(
        _image({"regcred": Unavailable("forbidden")}),
        [[Observation("unauthorized", 401)]],
        "undetermined",
        id="refused-but-a-secret-was-unreadable",
    ),
]


@pytest.mark.parametrize(("image", "observations", "expected"), CASES)
def test_outcome_is_the_outcome_of_the_verdict(
    image: ImagePlan, observations: list[list[Observation]], expected: str
) -> None:
    padded = [
        obs + [NOT_TRIED] * (len(g.attempts) - len(obs))
        for g, obs in zip(image.groups, observations, strict=True)
    ]

    assert outcome(image, padded) == expected
    assert assess(image, padded).outcome == expected
