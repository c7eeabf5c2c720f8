"""Structured-but-wrong AdmissionReviews: a valid review with values swapped for the wrong shape.

A valid Pod, Deployment or CronJob CREATE/UPDATE review has one to three of its nodes (any depth,
from ``request`` down to ``volumes[0].image.reference``) replaced by a random JSON value, an
unknown key added, or a list entry duplicated. Unlike the breaking mutations of
``test_malformed_reviews.py`` some of these still parse — so the oracle is pullguard's own pure
reader (``core.admission.parse_review`` + ``core.workloads.extract``) run in-process, and the
webhook must agree with it: what the reader refuses is never ``allowed: true``.

Every string the generator writes contains a space, so no generated value is a usable image
reference or host: nothing can make the webhook contact a registry (the base images point at
127.0.0.1:9, which the network guard refuses).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from tests.support.reviews import deployment, pod, review

UID = "fuzz-uid"
REFUSED = "127.0.0.1:9"

_text = st.text(max_size=6).map(lambda s: f"{s} !")
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


def _bases() -> list[dict[str, Any]]:
    images = [f"{REFUSED}/team/app:1.0"]
    spec: dict[str, Any] = {"pull_secrets": ["regcred"], "init_images": [f"{REFUSED}/x:1"]}
    p = pod("web", "shop", images, **spec)
    p["spec"]["nodeSelector"] = {"disk": "ssd"}
    p["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    p["spec"]["volumes"] = [{"name": "v", "image": {"reference": f"{REFUSED}/models:1"}}]
    p["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                        ]
                    }
                ]
            }
        }
    }
    d = deployment("api", "shop", images, **spec)
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {
            "schedule": "0 1 * * *",
            "jobTemplate": {"spec": {"template": copy.deepcopy(d["spec"]["template"])}},
        },
    }
    reviews = [review(p, uid=UID), review(d, uid=UID), review(cron, uid=UID)]
    reviews.append(review(p, uid=UID, operation="UPDATE", old=p))
    return reviews


BASES = _bases()


def _paths(node: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _parent(doc: Any, path: tuple[str | int, ...]) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def structured_reviews(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(doc, path), path[-1]
        action = draw(st.sampled_from(["replace", "replace", "replace", "add-key", "duplicate", "delete"]))
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "add-key" and isinstance(parent[last], dict):
            parent[last][draw(_text)] = draw(json_values)
        elif action == "duplicate" and isinstance(parent[last], list) and parent[last]:
            parent[last].append(copy.deepcopy(parent[last][0]))
        elif action == "delete":
            del parent[last]
    return json.dumps(doc).encode()
