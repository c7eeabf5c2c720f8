"""The offline CLI as a user meets it: plans, exit codes, and precise errors (no registry contacted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import deployment, manifests, pod, pull_secret, run, write_config


def _secret_file(tmp_path: Path, key: str) -> str:
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(pull_secret("hub", key, "hubuser", "hubpass")))
    return str(path)


def test_explain_offline_nginx_is_one_anonymous_attempt() -> None:
    r = run(["explain", "--offline", "--output", "json", "nginx"])
    assert r.exit_code == 0, r.stderr
    image = r.json
    assert image["reference"] == "docker.io/library/nginx:latest"
    assert [(a["identity"]["kind"], a["result"]) for a in image["attempts"]] == [("anonymous", "not-tried")]


@pytest.mark.parametrize(
    ("key", "attempts"),
    [
        pytest.param(
            "https://index.docker.io/v1/",
            [("pull-secret", "default/hub", "index.docker.io")],
            id="hub-fallback",
        ),
        pytest.param("*.docker.io", [("anonymous", None, None)], id="glob-never-matches-hub"),
    ],
)
def test_explain_offline_with_a_docker_hub_secret(tmp_path: Path, key: str, attempts: list[Any]) -> None:
    r = run(
        ["explain", "--offline", "--output", "json", "--secret-file", _secret_file(tmp_path, key), "nginx"]
    )
    assert r.exit_code == 0, r.stderr
    got = [
        (a["identity"]["kind"], a["identity"]["name"], a["identity"].get("key")) for a in r.json["attempts"]
    ]
    assert got == attempts
    assert "hubpass" not in r.stdout and "aHVidXNlcjpodWJwYXNz" not in r.stdout


def test_explain_offline_text_answers_the_four_questions() -> None:
    r = run(["explain", "--offline", "ghcr.io/acme/api:1.4.2"])
    assert r.exit_code == 0
    for label in ("exists?", "public?", "identity", "permitted?", "platforms", "tried"):
        assert label in r.stdout


def test_check_offline_plans_service_account_secrets_for_templates_only(tmp_path: Path) -> None:
    docs = manifests(
        pull_secret("sa-cred", "ghcr.io", "sa-bot", "pw1", "shop"),
        pull_secret("own-cred", "ghcr.io", "pod-bot", "pw2", "shop"),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": "shop"},
            "imagePullSecrets": [{"name": "sa-cred"}],
        },
        deployment("web", ["ghcr.io/acme/web:1"], namespace="shop"),
        pod("job", ["ghcr.io/acme/job:1"], secrets=["own-cred"], namespace="shop"),
    )
    (tmp_path / "all.yaml").write_text(docs)
    r = run(["check", "--offline", "--output", "json", str(tmp_path / "all.yaml")])
    assert r.exit_code == 0, r.stderr
    out = r.json
    assert out["summary"]["objects"] == 2
    plans = {
        res["object"]["name"]: [a["identity"]["name"] for a in res["images"][0]["attempts"]]
        for res in out["results"]
    }
    assert plans == {"web": ["shop/sa-cred"], "job": ["shop/own-cred"]}
    assert out["results"][0]["object"]["source"].endswith("all.yaml#4")


def test_malformed_secret_makes_every_image_secret_malformed(tmp_path: Path) -> None:
    bad = pull_secret("regcred", "ghcr.io", "u", "p", "shop")
    bad["data"] = {".dockerconfigjson": "eyJhdXRocyI6eyJnaGNyLmlvIjp7ImF1dGgiOiJub3QtYmFzZTY0ISJ9fX0="}
    docs = manifests(
        bad, pod("app", ["nginx:1.27", "ghcr.io/acme/api:1"], secrets=["regcred"], namespace="shop")
    )
    r = run(["check", "--offline", "--output", "json", "-"], stdin=docs)
    assert r.exit_code == 1
    images = r.json["results"][0]["images"]
    assert [i["outcome"] for i in images] == ["secret-malformed", "secret-malformed"]
    assert 'secret shop/regcred: .dockerconfigjson auths["ghcr.io"].auth' in images[0]["message"]
    assert r.json["results"][0]["allowed"] is False


def test_invalid_reference_is_certain_offline() -> None:
    r = run(["explain", "--offline", "--output", "json", "ghcr.io/Acme/API:1"])
    assert r.exit_code == 1
    assert r.json["outcome"] == "invalid-reference"
    assert "lower" in r.json["message"]


def test_bad_yaml_exits_2_naming_file_and_document(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\n---\nkind: [unclosed\n")
    r = run(["check", "--offline", str(f)])
    assert r.exit_code == 2
    assert f"{f}#2" in r.stderr and "line 4" in r.stderr


def test_bad_config_exits_2_naming_every_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"mode": "enfroce", "timeouts": {"deadlineSeconds": -1}, "netwrok": {}})
    r = run(["check", "--offline", "--config", path, "-"], stdin="")
    assert r.exit_code == 2
    for needle in ("mode", "timeouts.deadlineSeconds", "netwrok: unknown key"):
        assert needle in r.stderr


def test_malformed_workloads_are_bad_input_naming_file_document_and_field() -> None:
    docs = manifests(
        pod("ok", ["nginx"]),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nginx"}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "q"},
            "spec": {"containers": [{"image": 42}]},
        },
    )
    r = run(["check", "--offline", "--output", "json", "-"], stdin=docs)
    assert r.exit_code == 2
    assert r.stdout == ""
    assert "pullguard: -#2: spec.containers must be a list" in r.stderr
    assert "pullguard: -#3: spec.containers[0].image must be a string" in r.stderr


def test_kind_list_and_directories_are_read(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    listing = {"apiVersion": "v1", "kind": "List", "items": [pod("a", ["nginx"]), pod("b", ["redis"])]}
    (tmp_path / "d" / "list.yaml").write_text(yaml.safe_dump(listing))
    (tmp_path / "d" / "notes.txt").write_text("not a manifest")
    r = run(["check", "--offline", "--output", "json", str(tmp_path / "d")])
    assert r.exit_code == 0, r.stderr
    assert [x["object"]["source"].rsplit("#", 1)[1] for x in r.json["results"]] == [
        "1/items[0]",
        "1/items[1]",
    ]


def test_concatenated_and_newline_delimited_json_are_read_with_their_lines(tmp_path: Path) -> None:
    a, b = pod("a", ["nginx"]), pod("b", ["Bad/UPPER"])
    stream = tmp_path / "stream.JSON"  # an upper-case suffix is still a manifest in a directory
    stream.write_text(json.dumps(a) + json.dumps(b, indent=1) + "\n" + json.dumps(a) + "\n")
    r = run(["check", "--offline", "--output", "github", str(tmp_path)])
    assert r.exit_code == 1, r.stderr
    line = next(n for n, text in enumerate(stream.read_text().splitlines(), 1) if "Bad/UPPER" in text)
    assert line > 1 and f"::error file={stream},line={line}," in r.stdout  # the exact line of the image
    assert "3 objects, 3 images" in r.stdout
    broken = run(["check", "--offline", "-"], stdin=json.dumps(a) + '{"kind": ')
    assert broken.exit_code == 2
    assert "-#2: not valid JSON at line 1" in broken.stderr


def test_explain_takes_the_secrets_of_a_mixed_file_and_maps_unknown_with_allow_unknown(
    tmp_path: Path,
) -> None:
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(
        manifests(pod("web", ["nginx"]), pull_secret("hub", "https://index.docker.io/v1/", "u", "p"))
    )
    r = run(["explain", "--offline", "--output", "json", "--secret-file", str(mixed), "nginx"])
    assert r.exit_code == 0, r.stderr
    assert "ignoring Pod" in r.stderr
    assert [a["identity"]["name"] for a in r.json["attempts"]] == ["default/hub"]
    config = write_config(tmp_path, {"network": {"allowLoopback": True}, "timeouts": {"requestSeconds": 0.5}})
    unknown = run(["explain", "--config", config, "127.0.0.1:9/team/app:1"])  # nothing listens on port 9
    assert unknown.exit_code == 3
    allowed = run(["explain", "--config", config, "--allow-unknown", "127.0.0.1:9/team/app:1"])
    assert allowed.exit_code == 0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("mode: warn\nmode: audit\n", "mode: given twice (lines 1 and 2)", id="duplicate-key"),
        pytest.param(
            "cluster:\n  nodeGroups:\n  - name: a\n    name: b\n",
            "cluster.nodeGroups[0].name: given twice (lines 3 and 4)",
            id="duplicate-nested-key",
        ),
        pytest.param(
            "timeouts: {deadlineSeconds: '8'}\n",
            "timeouts.deadlineSeconds: Input should be a valid number",
            id="number-as-string",
        ),
        pytest.param(
            "network: {allowLoopback: 'true'}\n",
            "network.allowLoopback: Input should be a valid boolean",
            id="boolean-as-string",
        ),
        pytest.param(
            "exemptImages: ['/app/*']\n",
            "exemptImages: entry 0 ('/app/*') has no registry host",
            id="glob-no-host",
        ),
        pytest.param(
            "exemptImages: ['reg.io/[ab]*']\n", "only '*' wildcards are supported", id="glob-character-class"
        ),
        pytest.param(
            "cluster: {nodeDockerConfig: /nonexistent/config.json}\n",
            "cluster.nodeDockerConfig: file '/nonexistent/config.json' does not exist",
            id="node-docker-config-missing",
        ),
    ],
)
def test_a_configuration_is_refused_at_start_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "pullguard.yaml"
    path.write_text(text)
    r = run(["check", "--offline", "--config", str(path), "-"], stdin="")
    assert r.exit_code == 2
    assert needle in r.stderr


def test_valid_yaml_scalars_fill_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "pullguard.yaml"
    path.write_text(
        "timeouts: {deadlineSeconds: 5, requestSeconds: 1.5}\n"
        "exemptImages: ['[::1]:5000/*', 'registry.k8s.io/*']\n"
    )
    r = run(["check", "--offline", "--config", str(path), "-"], stdin=manifests(pod("a", ["[::1]:5000/x:1"])))
    assert r.exit_code == 0, r.stderr
