"""A wire-level FAKE of the Kubernetes API server, just enough for ``helm template --dry-run=server``.

This is a fake because nothing real can run here: there is no kube-apiserver (or envtest) binary
in Debian, PyPI or npm (research/test-infrastructure.md §6). It speaks plain HTTP on 127.0.0.1
and answers what helm 4 asks when a template calls ``lookup`` (observed with this helm, in order):
``/version``, the discovery documents ``/api``, ``/api/v1``, ``/apis`` and ``/apis/<group>/<v>``
(helm maps every rendered kind through them), and ``GET /api/v1/namespaces/<ns>/secrets/<name>``,
which the chart's self-managed certificates use to find the Secret of the previous release.
Everything else is a Kubernetes ``Status`` 404, as for an object that does not exist.

It holds Secrets only. Each request path is recorded, so a test can show that the lookup happened.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: group/version -> (kind, plural, namespaced) for every kind the chart renders. Discovery must list
#: them, or helm refuses to "build kubernetes objects" before it renders anything.
RESOURCES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "v1": (
        ("ConfigMap", "configmaps", True),
        ("Namespace", "namespaces", False),
        ("Node", "nodes", False),
        ("Secret", "secrets", True),
        ("Service", "services", True),
        ("ServiceAccount", "serviceaccounts", True),
    ),
    "apps/v1": (("Deployment", "deployments", True),),
    "policy/v1": (("PodDisruptionBudget", "poddisruptionbudgets", True),),
    "rbac.authorization.k8s.io/v1": (
        ("ClusterRole", "clusterroles", False),
        ("ClusterRoleBinding", "clusterrolebindings", False),
    ),
    "admissionregistration.k8s.io/v1": (
        ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False),
    ),
    "networking.k8s.io/v1": (("NetworkPolicy", "networkpolicies", True),),
    "cert-manager.io/v1": (("Certificate", "certificates", True), ("Issuer", "issuers", True)),
    "monitoring.coreos.com/v1": (("ServiceMonitor", "servicemonitors", True),),
}


class FakeKubeAPI:
    """The fake server; ``secrets[(namespace, name)]`` is what ``lookup`` finds."""

    def __init__(self, git_version: str = "v1.33.0") -> None:
        self.git_version = git_version
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def put_secret(self, manifest: Mapping[str, Any]) -> None:
        meta = manifest["metadata"]
        self.secrets[(meta["namespace"], meta["name"])] = dict(manifest)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}
            ],
            "current-context": "fake",
        }
        path.write_text(json.dumps(doc))
        return path

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        self.requests.append(path)
        parts = [p for p in urlsplit(path).path.split("/") if p]
        if parts == ["version"]:
            major, minor = self.git_version.lstrip("v").split(".")[:2]
            return 200, {"major": major, "minor": minor, "gitVersion": self.git_version}
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if parts == ["apis"]:
            groups = []
            for gv in RESOURCES:
                if "/" in gv:
                    group, version = gv.split("/")
                    ver = {"groupVersion": gv, "version": version}
                    groups.append({"name": group, "versions": [ver], "preferredVersion": ver})
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        gv = "/".join(parts[1:]) if parts[:1] == ["api"] else "/".join(parts[1:3])
        discovery = (parts[:1] == ["api"] and len(parts) == 2) or (parts[:1] == ["apis"] and len(parts) == 3)
        if discovery and gv in RESOURCES:
            return 200, _resource_list(gv)
        if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
            secret = self.secrets.get((parts[3], parts[5]))
            if secret is not None:
                return 200, secret
        return 404, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "NotFound",
            "code": 404,
            "message": f"{urlsplit(path).path} not found",
        }

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body = fake._answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            # client-go sends the discovery requests in parallel; with the default backlog of 5 the
            # kernel drops the extra SYNs and the client retries them a second later
            request_queue_size = 128
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-kube-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _resource_list(gv: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": [
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            }
            for kind, plural, namespaced in RESOURCES[gv]
        ],
    }


@contextmanager
def running_fake_kube_api(git_version: str = "v1.33.0") -> Iterator[FakeKubeAPI]:
    fake = FakeKubeAPI(git_version)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
