"""Serving behaviour over real sockets: ``?timeout=``, TLS policy, certificate reload, slow clients,
graceful shutdown, /metrics and the admission log line."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.infra.fake_apiserver import FakeApiServer
from tests.infra.fixtures import ALICE
from tests.infra.images import push_image
from tests.infra.registry import RegistryProcess
from tests.infra.tokenserver import TokenServer
from tests.support.reviews import deployment, pod, review
from tests.support.webhook import RunningWebhook, write_cert
from tests.webhook.conftest import StartWebhook, loopback
from webhook.logs import JsonFormatter


def _response(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["response"])


# -- ?timeout= --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_unknown", "allowed"), [pytest.param("warn", True, id="warn"), pytest.param("deny", False, id="deny")]
)
def test_the_api_servers_timeout_bounds_a_check_against_a_slow_registry(
    start_webhook: StartWebhook,
    registry_token: RegistryProcess,
    token_server: TokenServer,
    repo_name: Callable[[str], str],
    on_unknown: str,
    allowed: bool,
) -> None:
    image = f"{registry_token.host}/{repo_name('public')}:1.0"
    # pullguard's own limits are generous: only the API server's ?timeout= can cut this short
    config = loopback(
        registry_token, onUnknown=on_unknown, timeouts={"deadlineSeconds": 20, "requestSeconds": 20}
    )
    webhook = start_webhook(config)
    token_server.delay = 6.0
    # The API server gives up after ?timeout=; this client waits only a little longer.
    with webhook.client(timeout=httpx.Timeout(3.0)) as client:
        response = _response(webhook.review(review(pod("web", "shop", [image])), timeout="2s", client=client))

    assert response["allowed"] is allowed
    verdict = json.loads(response["auditAnnotations"]["verdict"])
    assert verdict["images"][0]["outcome"] == "timeout"
    if not allowed:
        assert ": timeout. " in response["status"]["message"]


def test_an_unreadable_timeout_parameter_falls_back_to_the_configured_deadline(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, repo_name: Callable[[str], str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    image = f"{registry_noauth.host}/{repo_name('team')}:1.0"

    response = _response(webhook.review(review(pod("web", "shop", [image])), timeout="soon"))

    assert response["allowed"] is False  # checked (not-found), not cut short
    assert json.loads(response["auditAnnotations"]["verdict"])["images"][0]["outcome"] == "not-found"


def test_shutdown_refuses_new_connections_and_lets_an_in_flight_review_finish(
    start_webhook: StartWebhook,
    registry_token: RegistryProcess,
    token_server: TokenServer,
    repo_name: Callable[[str], str],
) -> None:
    webhook = start_webhook(loopback(registry_token, timeouts={"deadlineSeconds": 10, "requestSeconds": 10}))
    token_server.delay = 2.0
    image = f"{registry_token.host}/{repo_name('public')}:1.0"
    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(webhook.review(review(pod("p", "shop", [image]))))
    )
    sender.start()
    _wait(lambda: bool(webhook.server.uvicorn.server_state.tasks))  # the review is being worked on

    webhook.server.stop()  # what SIGTERM does
    _wait(lambda: not webhook.server.uvicorn.servers[0].is_serving())
    with pytest.raises(httpx.ConnectError):
        httpx.get(webhook.url + "/healthz", verify=webhook.ssl_context(), timeout=3)
    assert not answers  # still in flight while new connections are refused
    sender.join(timeout=15)

    assert len(answers) == 1 and answers[0].status_code == 200
    assert answers[0].json()["response"]["allowed"] is False  # not-found: checked to the end


# -- TLS ----------------------------------------------------------------------------------------------


def _peer(url: str, ca: trustme.CA, **context: Any) -> tuple[str, str, str]:
    """(sha256 of the server certificate, TLS version, cipher) of a fresh connection."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    for key, value in context.items():
        if key == "ciphers":
            ctx.set_ciphers(value)
        else:
            setattr(ctx, key, value)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        cipher = tls.cipher()
        return hashlib.sha256(der).hexdigest(), str(tls.version()), cipher[0] if cipher else ""


def test_tls_12_is_served_with_forward_secret_aead_ciphers_only(
    start_webhook: StartWebhook, test_ca: trustme.CA
) -> None:
    webhook = start_webhook({})

    _, version, cipher = _peer(webhook.url, test_ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2"
    assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher)
    assert _peer(webhook.url, test_ca)[1] == "TLSv1.3"
    # a client that offers only CBC / static-RSA suites finds nothing it may use
    with pytest.raises(ssl.SSLError):
        _peer(
            webhook.url,
            test_ca,
            maximum_version=ssl.TLSVersion.TLSv1_2,
            ciphers="AES128-SHA:AES256-SHA:@SECLEVEL=0",
        )


def test_a_replaced_certificate_is_served_to_new_connections(
    start_webhook: StartWebhook, tmp_path: Path
) -> None:
    first_ca, second_ca = trustme.CA(), trustme.CA()
    cert_dir = tmp_path / "mounted-secret"
    write_cert(first_ca, cert_dir)
    webhook = start_webhook({}, cert_dir=cert_dir, reload_interval=0.05)
    before = _peer(webhook.url, first_ca)[0]

    # A half-written pair (new key, old certificate) is refused; the old certificate keeps serving.
    (cert_dir / "tls.key").write_bytes(second_ca.issue_cert("127.0.0.1").private_key_pem.bytes())
    _wait(lambda: webhook.certs.failures > 0)
    assert _peer(webhook.url, first_ca)[0] == before

    write_cert(second_ca, cert_dir)  # what a cert-manager renewal does to the mounted Secret
    _wait(lambda: webhook.certs.reloads == 1)

    after = _peer(webhook.url, second_ca)[0]
    assert after != before
    with pytest.raises(ssl.SSLCertVerificationError):
        _peer(webhook.url, first_ca)
    with httpx.Client(verify=_trust(second_ca)) as client:
        assert client.get(webhook.url + "/readyz").json() == {"status": "ready"}
    metrics = httpx.get(webhook.url + "/metrics", verify=_trust(second_ca)).text
    assert 'pullguard_certificate_reloads_total{result="ok"} 1.0' in metrics
    assert 'pullguard_certificate_reloads_total{result="failed"}' in metrics


def _trust(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def _wait(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_a_client_that_never_finishes_its_request_head_is_disconnected(
    start_webhook: StartWebhook, test_ca: trustme.CA
) -> None:
    webhook = start_webhook({}, read_header_timeout=0.3)
    host, port = webhook.server.address
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        _trust(test_ca).wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(
            b"POST /validate HTTP/1.1\r\nHost: pullguard\r\nContent-Type: appl"
        )  # ... and nothing more
        assert tls.recv(1024) == b""  # the server hung up (a socket timeout here would fail the test)
    # a client that does finish is served on the same server
    with webhook.client() as client:
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="head-then-nothing"),
        pytest.param(b'{"apiVersion": "admission.k8s.io/v1", "ki', id="part-of-the-body"),
    ],
)
def test_a_client_that_never_finishes_its_request_body_is_disconnected(
    start_webhook: StartWebhook, test_ca: trustme.CA, sent: bytes
) -> None:
    # the head arrives in time; only the body phase (read_timeout) can end this connection
    webhook = start_webhook({}, read_header_timeout=5.0, read_timeout=0.3)
    host, port = webhook.server.address
    with (
        socket.create_connection((host, port), timeout=3) as raw,
        _trust(test_ca).wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(
            b"POST /validate HTTP/1.1\r\nHost: pullguard\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + sent
        )
        began = time.monotonic()
        assert tls.recv(1024) == b""  # the server hung up (a socket timeout here would fail the test)
        assert time.monotonic() - began < 3.0
    with webhook.client() as client:
        assert client.get("/healthz").status_code == 200


def test_an_idle_keep_alive_connection_serves_request_after_request(
    start_webhook: StartWebhook, test_ca: trustme.CA
) -> None:
    # the read timers re-arm per request: three reviews on one connection, each within the limits
    webhook = start_webhook({}, read_header_timeout=1.0, read_timeout=1.0)
    with webhook.client(timeout=5) as client:
        answers = []
        for _ in range(3):
            answers.append(client.get("/healthz").status_code)
            time.sleep(0.4)
        answers.append(client.post("/validate", content=b"{}").status_code)
    assert answers == [200, 200, 200, 400]


# -- /metrics and logs --------------------------------------------------------------------------------


def test_metrics_count_admissions_and_never_name_an_image_or_a_credential(
    start_webhook: StartWebhook,
    fake_api: FakeApiServer,
    kubeconfig: Path,
    registry_htpasswd: RegistryProcess,
    repo_name: Callable[[str], str],
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    repo = repo_name("secret-project")
    push_image(registry_htpasswd, repo, "1.0", credentials=registry_htpasswd.push_credentials)
    fake_api.add_namespace(namespace)
    fake_api.add_pull_secret(namespace, "regcred", registry_htpasswd.host, ALICE[0], ALICE[1])
    fake_api.add_pull_secret(namespace, "stale", registry_htpasswd.host, ALICE[0], "stale-password-123")
    webhook = start_webhook(loopback(registry_htpasswd), kubeconfig=kubeconfig)
    good = f"{registry_htpasswd.host}/{repo}:1.0"
    caplog.set_level(logging.INFO, logger="pullguard.admission")

    ok = _response(webhook.review(review(pod("a", namespace, [good], pull_secrets=["regcred"]))))
    again = _response(webhook.review(review(pod("b", namespace, [good], pull_secrets=["regcred"]))))
    bad = _response(webhook.review(review(deployment("c", namespace, [good], pull_secrets=["stale"]))))
    assert (ok["allowed"], again["allowed"], bad["allowed"]) == (True, True, False)

    text = httpx.get(webhook.url + "/metrics", verify=webhook.ssl_context()).text
    assert (
        'pullguard_admissions_total{kind="Pod",mode="enforce",operation="CREATE",verdict="allowed"} 2.0'
        in text
    )
    assert (
        'pullguard_admissions_total{kind="Deployment",mode="enforce",operation="CREATE",verdict="denied"} 1.0'
        in text
    )
    assert 'pullguard_image_outcomes_total{mode="enforce",outcome="unauthorized"} 1.0' in text
    assert 'pullguard_admission_duration_seconds_count{verdict="allowed"} 2.0' in text
    assert (
        f'pullguard_registry_request_duration_seconds_count{{method="HEAD",registry="{registry_htpasswd.host}"'
        in text
    )
    assert 'pullguard_kube_request_duration_seconds_count{resource="secrets",result="ok"} 2.0' in text
    assert 'pullguard_cache_events_total{cache="registry",event="hit"}' in text
    # b reused a's secret and the namespace's labels; c reused the labels
    assert 'pullguard_cache_events_total{cache="kube",event="hit"} 3.0' in text
    for forbidden in (
        repo,
        "secret-project",
        ":1.0",
        "alice",
        ALICE[1],
        "stale-password-123",
        "regcred",
        namespace,
    ):
        assert forbidden not in text, forbidden

    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.getMessage() == "admission"]
    assert [(line["kind"], line["name"], line["verdict"]) for line in lines] == [
        ("Pod", "a", "allowed"),
        ("Pod", "b", "allowed"),
        ("Deployment", "c", "denied"),
    ]
    denied = lines[2]
    assert denied["namespace"] == namespace and denied["operation"] == "CREATE" and denied["code"] == 403
    assert denied["failing"] == [
        {"field": "spec.template.spec.containers[0].image", "outcome": "unauthorized", "changed": True}
    ]
    assert isinstance(denied["durationMs"], float) and denied["uid"]
    logged = json.dumps(lines)
    for forbidden in (ALICE[1], "stale-password-123"):
        assert forbidden not in logged


def test_a_running_webhook_is_ready_once_its_certificate_is_loaded(webhook_ready: RunningWebhook) -> None:
    assert webhook_ready.certs.problem() is None
    with webhook_ready.client() as client:
        assert client.get("/readyz").json() == {"status": "ready"}


@pytest.fixture
def webhook_ready(start_webhook: StartWebhook) -> RunningWebhook:
    return start_webhook({})


def test_an_idle_keep_alive_connection_outlives_the_request_head_timeout(
    start_webhook: StartWebhook, test_ca: trustme.CA
) -> None:
    """Found by the soak (bench/soak.py): the head timer used to cut every idle keep-alive
    connection after read_header_timeout (10 s), not the keep-alive timeout (30 s), so clients that
    reuse connections — the API server does — met resets."""
    webhook = start_webhook({}, read_header_timeout=0.3)
    host, port = webhook.server.address
    request = b"GET /healthz HTTP/1.1\r\nHost: pullguard\r\n\r\n"
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        _trust(test_ca).wrap_socket(raw, server_hostname=host) as tls,
    ):
        for _ in range(2):
            tls.sendall(request)
            answer = b""
            while not answer.endswith(b"}"):  # head and the JSON body, however they are split
                chunk = tls.recv(4096)
                assert chunk, f"the server closed the connection after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer
            time.sleep(0.6)  # idle for twice the head timeout, well within the keep-alive timeout


def test_a_review_whose_caller_hung_up_is_abandoned_not_finished(
    start_webhook: StartWebhook, test_ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the soak (bench/soak.py): overloaded, the webhook kept working on reviews whose
    callers had given up, and then answered none in time. The API server closes the connection
    when its timeout passes; the review is cancelled then, not run to its own deadline."""
    with socket.create_server(("127.0.0.1", 0)) as hung:  # listens, never answers: a hung registry
        registry = f"127.0.0.1:{hung.getsockname()[1]}"
        config = {
            "network": {"allowLoopback": True, "plainHttp": [registry]},
            "timeouts": {"deadlineSeconds": 8, "requestSeconds": 6},
        }
        webhook = start_webhook(config)
        caplog.set_level(logging.INFO)
        body = json.dumps(review(pod("web", "shop", [f"{registry}/team/app:1"]), uid="gone-uid")).encode()
        host, port = webhook.server.address
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            _trust(test_ca).wrap_socket(raw, server_hostname=host) as tls,
        ):
            head = f"POST /validate HTTP/1.1\r\nHost: pullguard\r\nContent-Length: {len(body)}\r\n\r\n"
            tls.sendall(head.encode() + body)
            time.sleep(0.3)  # the check is now waiting on the hung registry
        hung_up = time.monotonic()
        _wait(lambda: any("review abandoned" in r.getMessage() for r in caplog.records), 3)
        assert time.monotonic() - hung_up < 3  # long before the review's own 8 s deadline
        assert not any(
            r.getMessage() == "admission" and getattr(r, "fields", {}).get("uid") == "gone-uid"
            for r in caplog.records
        )
        # the webhook goes on serving
        with webhook.client(timeout=10) as client:
            assert client.get("/healthz").status_code == 200
