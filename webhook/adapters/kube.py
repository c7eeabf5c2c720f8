"""The Kubernetes API: Secrets, ServiceAccounts, Namespaces (labels) and Nodes, read-only.

What kubelet reads to pull (pkg/kubelet/kubelet_pods.go ``getPullSecretsForPod``: the pod's
pull secrets from *its own namespace*) is what pullguard reads, with the official ``kubernetes``
client, from in-cluster configuration (the pod's ServiceAccount token) or a kubeconfig file and
context — the same code for ``pullguard serve`` and ``pullguard check --kubeconfig``.

* Only Secrets and ServiceAccounts of the namespace a caller names are read (the webhook names
  the reviewed object's namespace and nothing else — DESIGN 5); nothing is listed cluster-wide
  except Nodes, and nothing is ever written.
* The client is synchronous (urllib3); every call runs in a worker thread so the event loop keeps
  serving, with a per-request timeout and without urllib3's retries (the API server's
  ``?timeout=`` bounds the admission, not a retry loop).
* Answers are cached for a few seconds (single-flight per object), so a burst of 200 Pods of one
  ReplicaSet costs one read; failures are cached for two seconds only.
* Every failure becomes ``Unavailable`` with a message a person can act on — missing RBAC (403)
  names the verb, resource and namespace; an unreachable API server names the address — never
  an exception: this module's one boundary (``_map_errors``) turns every ``kubernetes`` and
  ``urllib3`` exception into ``ClusterReadError``. Responses are parsed by ``core.objects`` and
  ``core.nodes``, the same parsers the CLI uses for files. Secret values never reach a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from webhook.core.errors import ClusterReadError, InputError
from webhook.core.identity import AccountResult, SecretResult, Unavailable
from webhook.core.nodes import NodeObject, node_object_from_dict
from webhook.core.objects import secret_from_dict, service_account_from_dict
from webhook.memo import Memo

if TYPE_CHECKING:
    # Imported where used: ``kubernetes`` takes ~0.4 s to import, and ``pullguard check`` without
    # ``--kubeconfig`` never talks to a cluster (bench/README.md, B2/B5 process wall time).
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

log = logging.getLogger("pullguard.kube")

#: Secrets and ServiceAccounts: a rotated pull secret is seen within this many seconds.
OBJECT_TTL = 10.0
#: Namespace labels (``pullguard.io/mode``) change rarely.
NAMESPACE_TTL = 30.0
#: Not cached here: the node view (webhook/nodeview.py) is the one cache of the nodes, so a view is
#: never older than its own TTL; reads are still single-flighted.
NODE_TTL = 0.0
#: A failed read is retried after this long (protects the API server during an outage).
ERROR_TTL = 2.0
#: Page size when listing Nodes (a 5,000-node cluster is ten requests, not one 50 MB body).
NODE_PAGE = 500
#: Cached objects at most (Secrets and ServiceAccounts of the namespaces seen recently).
MAX_ENTRIES = 20000
NO_CLUSTER = "no Kubernetes API configured"

T = TypeVar("T")
#: on_request(resource, result, seconds): result is ok | not-found | forbidden | unauthorized |
#: unreachable | error — a bounded set, safe as a metric label.
RequestHook = Callable[[str, str, float], None]


def _status_message(exc: ApiException) -> str:
    """The API server's own ``Status.message`` (it names user, verb, resource and namespace)."""
    try:
        doc = json.loads(exc.body or "")
    except ValueError:
        doc = None
    message = doc.get("message") if isinstance(doc, dict) else None
    return str(message)[:300] if message else (exc.reason or "")


class _NotFoundError(Exception):
    """404: the object does not exist (a value, not a failure)."""


@contextmanager
def _map_errors(what: str, where: str, timeout: float) -> Iterator[None]:
    """The one boundary: ``kubernetes``/``urllib3`` exceptions -> ``ClusterReadError``."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as exc:
        status = int(exc.status or 0)
        if status == 404:
            raise _NotFoundError(what) from None
        detail = _status_message(exc)
        if status == 403:
            raise ClusterReadError(
                f"forbidden (403): pullguard may not read {what} — grant its ServiceAccount this RBAC "
                f"permission ({detail})",
                status=403,
            ) from None
        if status == 401:
            raise ClusterReadError(
                f"the API server at {where} rejected pullguard's credentials (401 Unauthorized)", status=401
            ) from None
        if status == 0:
            raise ClusterReadError(
                f"cannot reach the API server at {where}: TLS failed ({_tls(exc)})"
            ) from None
        raise ClusterReadError(
            f"the API server at {where} answered {status} reading {what}: {detail}", status=status
        ) from None
    except urllib3.exceptions.NewConnectionError as exc:  # (a ConnectTimeoutError subclass, oddly)
        raise ClusterReadError(f"the API server at {where} is unreachable ({_reason(exc)})") from None
    except (urllib3.exceptions.TimeoutError, TimeoutError):
        raise ClusterReadError(
            f"the API server at {where} did not answer reading {what} within {timeout:g}s"
        ) from None
    except urllib3.exceptions.MaxRetryError as exc:
        reason = exc.reason
        if isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
            reason, urllib3.exceptions.NewConnectionError
        ):
            raise ClusterReadError(
                f"the API server at {where} did not answer reading {what} within {timeout:g}s"
            ) from None
        if isinstance(reason, urllib3.exceptions.SSLError):
            raise ClusterReadError(
                f"cannot reach the API server at {where}: TLS failed ({_tls(reason)})"
            ) from None
        raise ClusterReadError(f"the API server at {where} is unreachable ({_reason(reason)})") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterReadError(f"the API server at {where} is unreachable ({_reason(exc)})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClusterReadError(
            f"the API server at {where} sent an unreadable answer for {what}: {str(exc)[:120]}"
        ) from None


_SSL_REASON = re.compile(r"\[SSL: [A-Z0-9_]+\][^()'\"]*")


def _tls(exc: BaseException) -> str:
    """OpenSSL's own words ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ...")."""
    match = _SSL_REASON.search(str(exc))
    return match.group(0).strip() if match else type(exc).__name__


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "no answer"
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "timed out"):
        if marker.lower() in text.lower():
            return marker.lower()
    return type(exc).__name__


def _result_of(exc: ClusterReadError) -> str:
    if exc.status is None:
        return "unreachable"
    return {403: "forbidden", 401: "unauthorized"}.get(exc.status, "error")


class KubeCluster:
    """``SecretSource``, ``NamespaceSource`` and ``NodeSource`` over one API server."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        request_timeout: float = 2.0,
        object_ttl: float = OBJECT_TTL,
        namespace_ttl: float = NAMESPACE_TTL,
        node_ttl: float = NODE_TTL,
        clock: Callable[[], float] = time.monotonic,
        on_request: RequestHook | None = None,
    ) -> None:
        from kubernetes import client as k8s

        self._api = api
        self._core = k8s.CoreV1Api(api)
        self.where = str(api.configuration.host)
        self.request_timeout = request_timeout
        self._ttl = {"secrets": object_ttl, "serviceaccounts": object_ttl, "namespaces": namespace_ttl}
        self._ttl["nodes"] = node_ttl
        self._clock = clock
        self._on_request = on_request
        #: cache_hit / cache_miss / single_flight (read by /metrics)
        self.stats: Counter[str] = Counter()
        self._memo: Memo[Any] = Memo(0, clock=clock, max_entries=MAX_ENTRIES, stats=self.stats)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | None, context: str | None, **options: Any) -> KubeCluster:
        """From a kubeconfig file (None: ``$KUBECONFIG`` or ``~/.kube/config``) and context."""
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config
        from kubernetes.config.config_exception import ConfigException

        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration, persist_config=False
            )
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
            where = path or "the default kubeconfig"
            raise ClusterReadError(
                f"cannot use {where}{f' context {context}' if context else ''}: {exc}"
            ) from None
        return cls(_client(configuration), **options)

    @classmethod
    def in_cluster(cls, **options: Any) -> KubeCluster:
        """From the pod's ServiceAccount (``KUBERNETES_SERVICE_HOST`` and the mounted token)."""
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config
        from kubernetes.config.config_exception import ConfigException

        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (ConfigException, OSError) as exc:
            raise ClusterReadError(f"cannot use the in-cluster configuration: {exc}") from None
        return cls(_client(configuration), **options)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # -- the ports ------------------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> SecretResult:
        what = f'secret "{name}" in namespace {namespace} (verb get, resource secrets)'

        def read() -> SecretResult:
            doc = self._read_json("secrets", what, self._core.read_namespaced_secret, name, namespace)
            if doc is None:
                return None
            try:
                return secret_from_dict(doc, namespace, "cluster")
            except InputError as exc:
                return Unavailable(
                    f"the API server sent an unreadable Secret {namespace}/{name}: {exc.message}"
                )

        return await self._cached(("secrets", namespace, name), read)

    async def get_service_account(self, namespace: str, name: str) -> AccountResult:
        what = f'serviceaccount "{name}" in namespace {namespace} (verb get, resource serviceaccounts)'

        def read() -> AccountResult:
            doc = self._read_json(
                "serviceaccounts", what, self._core.read_namespaced_service_account, name, namespace
            )
            if doc is None:
                return None
            try:
                return service_account_from_dict(doc, namespace, "cluster")
            except InputError as exc:
                return Unavailable(f"the API server sent an unreadable ServiceAccount: {exc.message}")

        return await self._cached(("serviceaccounts", namespace, name), read)

    async def namespace_labels(self, name: str) -> Mapping[str, str] | Unavailable | None:
        what = f'namespace "{name}" (verb get, resource namespaces, cluster-scoped)'

        def read() -> Mapping[str, str] | Unavailable | None:
            doc = self._read_json("namespaces", what, self._core.read_namespace, name)
            if doc is None:
                return None
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            labels = meta.get("labels") if isinstance(meta, dict) else None
            return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

        return await self._cached(("namespaces", name), read)

    async def nodes(self) -> Sequence[NodeObject] | Unavailable:
        def read() -> Sequence[NodeObject] | Unavailable:
            out: list[NodeObject] = []
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {"limit": NODE_PAGE}
                if token:
                    kwargs["_continue"] = token
                doc = self._read_json(
                    "nodes", "nodes (verb list, resource nodes)", self._core.list_node, **kwargs
                )
                items = doc.get("items") if isinstance(doc, dict) else None
                for item in items if isinstance(items, list) else []:
                    try:
                        out.append(node_object_from_dict(item if isinstance(item, dict) else {}))
                    except InputError as exc:
                        log.warning("skipping a Node the API server sent: %s", exc.message)
                meta = doc.get("metadata") if isinstance(doc, dict) else None
                token = meta.get("continue") if isinstance(meta, dict) else None
                if not token:
                    return out

        return await self._cached(("nodes",), read)

    # -- plumbing -------------------------------------------------------------------------------

    def _read_json(
        self, resource: str, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """One GET, its JSON body; None on 404. Raises ``ClusterReadError`` otherwise."""
        timeout = self.request_timeout
        started = self._clock()
        result = "ok"
        try:
            try:
                with _map_errors(what, self.where, timeout):
                    response = call(
                        *args, _preload_content=False, _request_timeout=(timeout, timeout), **kwargs
                    )
                    try:
                        return json.loads(response.data)
                    finally:
                        response.release_conn()
            except _NotFoundError:
                result = "not-found"
                return None
            except ClusterReadError as exc:
                result = _result_of(exc)
                raise
        finally:
            if self._on_request is not None:
                self._on_request(resource, result, self._clock() - started)

    async def _cached(self, key: tuple[str, ...], read: Callable[[], T]) -> T | Unavailable:
        # Shared and single-flighted; a caller whose admission timed out does not cancel the read.
        ttl = self._ttl[key[0]]
        value: T | Unavailable = await self._memo.get(
            key,
            lambda: asyncio.to_thread(self._guarded, read),
            lambda v: min(ttl, ERROR_TTL) if isinstance(v, Unavailable) else ttl,
        )
        return value

    @staticmethod
    def _guarded(read: Callable[[], T]) -> T | Unavailable:
        try:
            return read()
        except ClusterReadError as exc:
            return Unavailable(exc.message)
        except Exception as exc:  # a client bug must become a finding, not a failed admission
            log.exception("unexpected error reading the Kubernetes API")
            return Unavailable(f"unexpected error reading the Kubernetes API ({type(exc).__name__})")


def _client(configuration: k8s.Configuration) -> k8s.ApiClient:
    from kubernetes import client as k8s

    # No urllib3 retries: a refused connection is reported at once, within the admission deadline.
    configuration.retries = 0
    api = k8s.ApiClient(configuration)
    api.user_agent = "pullguard"
    return api


class NoCluster:
    """No API server configured: every read is ``Unavailable`` with the reason (never a crash).

    ``make run`` serves without a cluster: a named pull secret becomes a finding saying it could
    not be read, and the check goes on as kubelet would (skipping it).
    """

    where = "(none)"

    def __init__(self, reason: str = NO_CLUSTER) -> None:
        self.reason = reason
        self.stats: Counter[str] = Counter()

    async def get_secret(self, namespace: str, name: str) -> SecretResult:
        return Unavailable(self.reason)

    async def get_service_account(self, namespace: str, name: str) -> AccountResult:
        return Unavailable(self.reason)

    async def namespace_labels(self, name: str) -> Mapping[str, str] | Unavailable | None:
        return Unavailable(self.reason)

    async def nodes(self) -> Sequence[NodeObject] | Unavailable:
        return Unavailable(self.reason)

    def close(self) -> None:
        return None
