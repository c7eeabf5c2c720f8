"""A wire-level fake of the Kubernetes API server's read endpoints, over real HTTPS.

No real API server can run here: there is no kube-apiserver or envtest binary in Debian, PyPI or
npm (research/test-infrastructure.md §6), and etcd alone is not an API server. So this is the one
fake the standards allow — at the HTTP level only: its clients reach it through a kubeconfig
(``certificate-authority-data`` + bearer token), exactly as they reach a cluster — the real
``kubernetes`` client under pullguard's unchanged adapter, and a real ``helm`` (client-go) running
``helm template --dry-run=server`` so that the chart's ``lookup`` asks a cluster.

It serves, in the API server's wire format:

* ``GET /api/v1/namespaces/{ns}/secrets/{name}``, ``.../serviceaccounts/{name}``,
  ``GET /api/v1/namespaces/{name}`` and ``GET /api/v1/nodes`` (``limit``/``continue`` paging);
* what client-go asks before anything else (observed with helm 4, in order): ``/version`` and the
  discovery documents ``/api``, ``/api/v1``, ``/apis`` and ``/apis/<group>/<version>`` for every
  kind the chart renders (``RESOURCES``; helm maps each rendered object through them);
* ``metav1.Status`` errors: 404 NotFound (also for anything else, such as the GET helm makes of
  every object it renders), 403 Forbidden (the API server's own message shape, naming user, verb,
  resource and namespace) for resources a test forbids, 401 for a wrong token;
* a ``delay`` to play a slow API server.

Every request is recorded (method, path, query) so tests can assert what was read — and what
was not (another namespace's Secrets).
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
import yaml

from tests.infra._http import LoopbackHTTP, QuietHandler

TOKEN = "fake-apiserver-token"
USER = "system:serviceaccount:pullguard:pullguard"
GIT_VERSION = "v1.33.0"

#: group/version -> (kind, plural, namespaced) that discovery lists: what pullguard reads and every
#: kind the chart renders (helm refuses to "build kubernetes objects" of a kind discovery lacks).
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


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: Mapping[str, list[str]]


def _status(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": dict(details or {}),
        "code": code,
    }


class FakeApiServer(LoopbackHTTP):
    """Start with ``start()`` (or ``with``); point a kubeconfig at it with ``write_kubeconfig()``."""

    thread_name = "fake-apiserver"
    backlog = 128  # client-go sends its discovery requests in parallel

    def __init__(self, ca: trustme.CA, token: str = TOKEN) -> None:
        self.ca = ca
        self.token = token
        self._objects: dict[str, dict[str, Any]] = {}
        self._nodes: list[dict[str, Any]] = []
        self._forbidden: set[tuple[str, str | None]] = set()
        self._lock = threading.Lock()
        self.requests: list[Seen] = []
        self.delay = 0.0
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._tls)

    # -- fixtures -------------------------------------------------------------------------------

    def add_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, bytes],
        type_: str = "kubernetes.io/dockerconfigjson",
    ) -> None:
        doc = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"},
            "type": type_,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        self._put(f"/api/v1/namespaces/{namespace}/secrets/{name}", doc)

    def add_pull_secret(self, namespace: str, name: str, server: str, username: str, password: str) -> None:
        auth = base64.b64encode(f"{username}:{password}".encode()).decode()
        config = json.dumps({"auths": {server: {"auth": auth}}}).encode()
        self.add_secret(namespace, name, {".dockerconfigjson": config})

    def add_service_account(self, namespace: str, name: str, pull_secrets: Sequence[str] = ()) -> None:
        doc = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
            "imagePullSecrets": [{"name": n} for n in pull_secrets],
        }
        self._put(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}", doc)

    def add_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        doc = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}},
        }
        self._put(f"/api/v1/namespaces/{name}", doc)

    def add_node(self, name: str, labels: Mapping[str, str], provider_id: str = "") -> None:
        with self._lock:
            self._nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": dict(labels)},
                    "spec": {"providerID": provider_id} if provider_id else {},
                    "status": {"nodeInfo": {"operatingSystem": "linux"}},
                }
            )

    def put_object(self, manifest: Mapping[str, Any]) -> None:
        """Store a namespaced core/v1 manifest as it is (a Secret that ``helm install`` created)."""
        self._put(_object_path(manifest), dict(manifest))

    def delete_object(self, manifest: Mapping[str, Any]) -> None:
        with self._lock:
            self._objects.pop(_object_path(manifest), None)

    def forbid(self, resource: str, namespace: str | None = None) -> None:
        """Answer 403 for ``resource`` (secrets, serviceaccounts, namespaces, nodes) in ``namespace``."""
        with self._lock:
            self._forbidden.add((resource, namespace))

    def reads(self, resource: str) -> list[str]:
        """Paths of the GETs of ``resource`` seen so far."""
        with self._lock:
            return [s.path for s in self.requests if f"/{resource}" in s.path]

    def _put(self, path: str, doc: dict[str, Any]) -> None:
        with self._lock:
            self._objects[path] = doc

    # -- serving --------------------------------------------------------------------------------

    def _answer(self, method: str, raw_path: str, auth: str | None) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        path = parts.path.rstrip("/")
        with self._lock:
            self.requests.append(Seen(method, path, query))
        if self.delay:
            time.sleep(self.delay)
        if auth != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if method != "GET":
            return 405, _status(405, "MethodNotAllowed", "the fake API server only serves GET")
        discovery = _discovery(path)
        if discovery is not None:
            return 200, discovery
        segments = path.split("/")
        # /api/v1/namespaces/{ns}/{resource}/{name} | /api/v1/namespaces/{name} | /api/v1/nodes
        if path == "/api/v1/nodes":
            return self._nodes_page(query)
        if len(segments) == 7 and segments[3] == "namespaces":
            namespace, resource, name = segments[4], segments[5], segments[6]
        elif len(segments) == 5 and segments[3] == "namespaces":
            namespace, resource, name = None, "namespaces", segments[4]
        else:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        with self._lock:
            forbidden = (resource, namespace) in self._forbidden or (resource, None) in self._forbidden
            doc = self._objects.get(path)
        if forbidden:
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            message = (
                f'{resource} "{name}" is forbidden: User "{USER}" cannot get resource "{resource}" '
                f'in API group ""{where}'
            )
            return 403, _status(403, "Forbidden", message, {"name": name, "kind": resource})
        if doc is None:
            return 404, _status(
                404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource}
            )
        return 200, doc

    def _nodes_page(self, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if ("nodes", None) in self._forbidden:
                message = (
                    f'nodes is forbidden: User "{USER}" cannot list resource "nodes" in API group "" '
                    "at the cluster scope"
                )
                return 403, _status(403, "Forbidden", message, {"kind": "nodes"})
            nodes = list(self._nodes)
        limit = int(query.get("limit", ["0"])[0] or 0) or len(nodes) or 1
        start = int(query.get("continue", ["0"])[0] or 0)
        page = nodes[start : start + limit]
        more = start + limit < len(nodes)
        meta: dict[str, Any] = {"resourceVersion": "1"}
        if more:
            meta["continue"] = str(start + limit)
        return 200, {"apiVersion": "v1", "kind": "NodeList", "metadata": meta, "items": page}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.reply_json(*fake._answer("GET", self.path, self.headers.get("Authorization")))

        return Handler

    def tls_context(self) -> ssl.SSLContext:
        return self._tls

    def write_kubeconfig(
        self, path: Path, context: str = "fake", token: str | None = None, trust: trustme.CA | None = None
    ) -> Path:
        """A kubeconfig (with a second, unreachable context ``down``) pointing at this server.

        ``trust``: the CA the kubeconfig trusts instead of this server's (a TLS failure).
        """
        ca_data = base64.b64encode((trust or self.ca).cert_pem.bytes()).decode()
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "fake", "cluster": {"server": self.url, "certificate-authority-data": ca_data}},
                # 127.0.0.1:9 (discard): nothing listens there; the connection is refused.
                {
                    "name": "down",
                    "cluster": {"server": "https://127.0.0.1:9", "certificate-authority-data": ca_data},
                },
            ],
            "users": [{"name": "pullguard", "user": {"token": token or self.token}}],
            "contexts": [
                {"name": context, "context": {"cluster": "fake", "user": "pullguard"}},
                {"name": "down", "context": {"cluster": "down", "user": "pullguard"}},
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(doc))
        return path


def _object_path(manifest: Mapping[str, Any]) -> str:
    meta = manifest["metadata"]
    plural = next(p for kind, p, _ in RESOURCES["v1"] if kind == manifest["kind"])
    return f"/api/v1/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


def _discovery(path: str) -> dict[str, Any] | None:
    """``/version`` and the discovery documents client-go reads before any request; None otherwise."""
    if path == "/version":
        major, minor = GIT_VERSION.lstrip("v").split(".")[:2]
        return {"major": major, "minor": minor, "gitVersion": GIT_VERSION}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = []
        for gv in RESOURCES:
            if "/" in gv:
                group, version = gv.split("/")
                preferred = {"groupVersion": gv, "version": version}
                groups.append({"name": group, "versions": [preferred], "preferredVersion": preferred})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    prefix, _, gv = path.lstrip("/").partition("/")  # /api/v1 | /apis/<group>/<version>
    if (prefix, gv) != ("api", "v1") and not (prefix == "apis" and "/" in gv and gv in RESOURCES):
        return None
    resources = [
        {
            "name": plural,
            "singularName": kind.lower(),
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }
        for kind, plural, namespaced in RESOURCES[gv]
    ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
