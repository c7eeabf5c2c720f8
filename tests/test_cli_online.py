"""``pullguard check`` and ``explain`` online, as a user runs them, against the real registries.

The demo file (tests/support/demo.py) holds a dozen workloads — public, private with the right
secret, with none, with a wrong password, a stale secret in front of a public image, a missing
tag, a digest, an arm64-only index for amd64 nodes, init containers, ServiceAccount secrets, a
malformed secret, another user's secret — checked with ``--output json`` and ``--output text``.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.infra.fixtures import ALICE
from tests.infra.images import push_image
from tests.infra.registry import RegistryProcess
from tests.support.cli import Run, deployment, manifests, pod, registry_config, run, write_config
from tests.support.demo import EXPECTED, NAMESPACE, WRONG, Demo, build_demo
from tests.support.scripted import ScriptedServer

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
    registry_htpasswd: RegistryProcess,
    registry_token: RegistryProcess,
) -> Demo:
    return build_demo(
        tmp_path_factory.mktemp("demo"), registry_htpasswd, registry_token, secrets.token_hex(3)
    )


@pytest.fixture(scope="module")
def as_json(demo: Demo) -> Run:
    return run(["check", "--config", str(demo.config), "--output", "json", str(demo.manifest)])


@pytest.fixture(scope="module")
def as_text(demo: Demo) -> Run:
    return run(["check", "--config", str(demo.config), str(demo.manifest)])


def _images(report: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (r["object"]["kind"], r["object"]["name"], i["field"]): i
        for r in report["results"]
        for i in r["images"]
    }


def test_check_json_gives_every_workload_its_outcome(as_json: Run) -> None:
    assert as_json.exit_code == 1, as_json.stderr
    got = {key: image["outcome"] for key, image in _images(as_json.json).items()}
    assert got == EXPECTED
    summary = as_json.json["summary"]
    assert (summary["objects"], summary["images"]) == (12, 14)
    assert (summary["pullable"], summary["notPullable"], summary["unknown"]) == (6, 8, 0)


@pytest.mark.parametrize(
    ("key", "answers"),
    [
        pytest.param(
            ("Deployment", "api-nosecret"),
            {"exists": None, "visibility": "private", "identity": {"kind": "anonymous", "name": None}},
            id="no-secret-does-not-exist-or-is-private",
        ),
        pytest.param(
            ("Deployment", "web-stale-secret"),
            {"exists": True, "visibility": "public"},
            id="stale-secret-public-image",
        ),
        pytest.param(("Deployment", "api-typo"), {"exists": False, "suggestions": ["2.1", "2.0"]}, id="typo"),
        pytest.param(("Deployment", "api-pinned"), {"exists": True}, id="digest"),
        pytest.param(
            ("StatefulSet", "api-via-sa"),
            {"identity": {"kind": "pull-secret", "name": f"{NAMESPACE}/regcred-api", "username": ALICE[0]}},
            id="service-account-secret",
        ),
        pytest.param(
            ("CronJob", "billing-report"), {"exists": None, "visibility": "private"}, id="other-user"
        ),
    ],
)
def test_check_json_answers_the_four_questions(
    as_json: Run, key: tuple[str, str], answers: dict[str, Any]
) -> None:
    image = next(i for (k, n, _f), i in _images(as_json.json).items() if (k, n) == key)
    for field, value in answers.items():
        if field == "identity":
            assert {k: image["identity"].get(k) for k in value} == value
        else:
            assert image[field] == value, image


def test_check_json_messages_and_fixes_name_the_cause(as_json: Run) -> None:
    images = {(k, n): i for (k, n, _f), i in _images(as_json.json).items()}
    stale = images[("Deployment", "web-stale-secret")]
    assert "kubelet never retries anonymously" in stale["message"]
    assert "remove secret shop/regcred-stale" in stale["fix"]
    assert "does not exist or is private" in images[("Deployment", "api-nosecret")]["message"]
    assert "did you mean 2.1, 2.0?" in images[("Deployment", "api-typo")]["message"]
    assert "has no image for linux/amd64" in images[("DaemonSet", "arm-tool")]["message"]
    assert "even public ones" in images[("Pod", "broken-secret")]["message"]
    assert "user bob" in images[("CronJob", "billing-report")]["message"]
    assert images[("Deployment", "billing")]["attempts"][0]["status"] == 401
    broken = next(r for r in as_json.json["results"] if r["object"]["name"] == "broken-secret")
    assert broken["allowed"] is False


def test_check_output_never_contains_a_password(as_json: Run, as_text: Run) -> None:
    for out in (as_json.stdout, as_text.stdout, as_json.stderr, as_text.stderr):
        for password in (ALICE[1], WRONG, "s3cret-BOB"):
            assert password not in out


def test_check_text_groups_per_object_with_the_four_answers(as_text: Run) -> None:
    assert as_text.exit_code == 1, as_text.stderr
    out = as_text.stdout
    assert "12 objects, 14 images: 6 pullable, 8 not pullable, 0 unknown" in out
    block = out.split("✗ Deployment shop/web-stale-secret")[1].split("\n\n")[0]
    for label in ("exists?", "public?", "identity", "permitted?", "platforms", "why", "fix", "tried"):
        assert f"    {label}" in block
    assert "public — an anonymous pull works" in block
    assert "1. secret shop/regcred-stale (user alice)" in block
    assert "✓ Deployment shop/api  allowed" in out


def test_explain_online_names_the_identity_and_exit_code(demo: Demo, tmp_path: Path) -> None:
    text = demo.manifest.read_text()
    image = next(line.split("image: ")[1] for line in text.splitlines() if "api-" in line and ":2.1" in line)
    secret_file = tmp_path / "secret.yaml"
    docs = text.split("\n---\n")
    secret_file.write_text(next(d for d in docs if "name: regcred-api" in d))
    good = run(
        [
            "explain",
            "--config",
            str(demo.config),
            "--namespace",
            NAMESPACE,
            "--secret-file",
            str(secret_file),
            "--output",
            "json",
            image,
        ]
    )
    assert good.exit_code == 0, good.stdout + good.stderr
    assert good.json["outcome"] == "pullable" and good.json["identity"]["name"] == f"{NAMESPACE}/regcred-api"
    bare = run(["explain", "--config", str(demo.config), image])
    assert bare.exit_code == 1
    assert "does not exist or is private" in bare.stdout


@pytest.mark.parametrize(
    ("flags", "code"),
    [pytest.param([], 3, id="unknown-exits-3"), pytest.param(["--allow-unknown"], 0, id="allow-unknown")],
)
def test_an_unreachable_registry_is_unknown_exit_3(tmp_path: Path, flags: list[str], code: int) -> None:
    with ScriptedServer() as gone:
        dead = gone.netloc
    config = write_config(tmp_path, {"network": {"allowLoopback": True, "plainHttp": [dead]}})
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(manifests(pod("p", [f"{dead}/team/app:v1"])))
    r = run(["check", "--config", config, "--output", "json", *flags, str(manifest)])
    assert r.exit_code == code, r.stdout + r.stderr
    assert r.json["summary"]["unknown"] == 1
    assert r.json["results"][0]["images"][0]["outcome"] == "unreachable"


def test_a_refusal_is_not_certain_while_kubelet_holds_credentials_pullguard_could_not_read(
    tmp_path: Path, registry_htpasswd: RegistryProcess
) -> None:
    repo = f"team/unread-{secrets.token_hex(3)}"
    push_image(registry_htpasswd, repo, "1.0")
    image = f"{registry_htpasswd.host}/{repo}:1.0"
    config = write_config(tmp_path, registry_config(registry_htpasswd))
    known = manifests(deployment("plain", [image]))  # the default ServiceAccount: no pull secrets
    unread = manifests(deployment("builder", [image], service_account="builder"))  # not in the input

    certain = run(["check", "--config", config, "--output", "json", "-"], stdin=known)
    assert certain.exit_code == 1
    assert certain.json["results"][0]["images"][0]["outcome"] == "unauthorized"

    r = run(["check", "--config", config, "--output", "json", "-"], stdin=unread)
    assert r.exit_code == 3, r.stdout
    verdict = r.json["results"][0]["images"][0]
    assert verdict["outcome"] == "undetermined"
    assert "ServiceAccount default/builder could not be read" in verdict["message"]
    assert "kubelet would try those credentials too" in verdict["message"]
