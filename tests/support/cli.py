"""Running the real CLI in-process (click's runner) and building the inputs a user would write."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from webhook.cli import cli


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def run(args: Sequence[str], stdin: str | None = None) -> Run:
    """``pullguard ARGS`` as a user runs it; exceptions are failures, not exit codes."""
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def write_config(tmp: Path, config: dict[str, Any], name: str = "pullguard.yaml") -> str:
    path = tmp / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def registry_config(*registries: Any, **extra: Any) -> dict[str, Any]:
    """Configuration that lets pullguard reach the tests' loopback registries."""
    plain = [r.host for r in registries if not r.tls]
    cas = [str(r.ca_file) for r in registries if r.tls]
    config: dict[str, Any] = {"network": {"allowLoopback": True, "plainHttp": plain}}
    if cas:
        config["network"]["caFile"] = cas[0]
    for key, value in extra.items():
        config[key] = value
    return config


def dockerconfigjson_secret(name: str, namespace: str, auths: dict[str, Any]) -> dict[str, Any]:
    """A ``kubernetes.io/dockerconfigjson`` Secret manifest holding ``{"auths": auths}``."""
    config = json.dumps({"auths": auths}).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": namespace},
        "data": {".dockerconfigjson": base64.b64encode(config).decode()},
    }


def pull_secret(
    name: str, server: str, username: str, password: str, namespace: str = "default"
) -> dict[str, Any]:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return dockerconfigjson_secret(name, namespace, {server: {"auth": auth}})


def pod(
    name: str,
    images: Sequence[str],
    secrets: Sequence[str] = (),
    namespace: str = "default",
    init: Sequence[str] = (),
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)],
        **spec,
    }
    if init:
        body["initContainers"] = [{"name": f"init{i}", "image": im} for i, im in enumerate(init)]
    if secrets:
        body["imagePullSecrets"] = [{"name": s} for s in secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def deployment(
    name: str,
    images: Sequence[str],
    secrets: Sequence[str] = (),
    namespace: str = "default",
    service_account: str | None = None,
) -> dict[str, Any]:
    spec = pod(name, images, secrets, namespace)["spec"]
    if service_account:
        spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def manifests(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)
