"""The credential sentinel: a unique value in every kind of credential, found nowhere pullguard writes.

DESIGN 1.1 and 5: "passwords, tokens and ``auth`` values never appear anywhere (output, logs,
metrics, errors)". This plants a distinctive random value (``PGSENT<run>...``, new every run) in
each kind of credential pullguard handles, drives real checks with them — right and wrong
passwords, against the real ``docker-registry`` with htpasswd and with token auth, moto for ECR,
the GCP wire fake (tests/infra/fake_gcp.py: no emulator exists) for Artifact Registry — and then
searches every surface for the value and its encodings (base64 and base64url at all three
alignments, which also finds it inside an ``auth`` = base64(user:password)):

* ``pullguard check`` in every ``--output`` (text, json, sarif, junit, github), stdout and stderr;
* ``pullguard explain`` (text and json) with ``--secret-file``;
* the CLI's logs at debug level (configured as ``pullguard serve`` configures them);
* ``pullguard serve --log-level debug`` as a child process: its whole stderr;
* its ``/metrics``;
* its AdmissionReview responses in enforce, warn and audit mode (allowed, denied, warnings, audit
  annotations), reading the Secrets from the fake API server (tests/infra/fake_apiserver.py);
* exception messages: ``str``, ``repr`` and the formatted traceback (with causes) of every error
  the pure readers raise on the malformed secrets.

Each check also asserts the outcome it was meant to produce (pullable with the right password,
unauthorized with the wrong one, secret-malformed for the broken ones), so a surface cannot be
empty of sentinels merely because nothing ran. The test reports kinds x surfaces checked.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml

from tests.infra.fake_apiserver import FakeApiServer
from tests.infra.fake_gcp import FakeGcp, FakeProject, binding
from tests.infra.images import push_image
from tests.infra.moto_server import ACCOUNT, ECR_PASSWORD, MotoServer
from tests.infra.registry import RegistryProcess
from tests.infra.tokenserver import TokenServer
from tests.support.cli import manifests, run, write_config
from tests.support.ecr import READ_ONLY, ecr_host, make_repository, make_role
from tests.support.reviews import review
from tests.support.webhook import NODELAY, write_cert
from webhook import logs
from webhook.core.dockercfg import DockerCfgError, entries_from_secret, parse_docker_config_json
from webhook.core.errors import InputError, SecretMalformedError
from webhook.core.objects import secret_from_dict
from webhook.settings import read_node_docker_config

pytestmark = pytest.mark.registry

RUN = secrets.token_hex(5)
PULLGUARD = Path(sys.executable).parent / "pullguard"
NODE_SA = "nodes@acme-prod.iam.gserviceaccount.com"
AR_IMAGE = "us-docker.pkg.dev/acme-shared/images/team/web:1.4.2"
GKE_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_only"]


def _value(kind: str) -> str:
    # letters and digits only: JSON, URL and YAML encodings leave it as it is
    return f"PGSENT{RUN}{''.join(c for c in kind.title() if c.isalnum())}Z"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _fragments(value: str) -> set[str]:
    """``value``, and the base64/base64url run that must appear wherever it is encoded."""
    raw = value.encode()
    forms = {value}
    for pad in range(3):  # the value at each of the three alignments inside a longer base64 text
        for enc in (_b64, _b64url):
            text = enc(b"\0" * pad + raw).rstrip("=")
            forms.add(text[4 if pad else 0 : -4])
    return forms


def encodings(value: str, user: str | None = None) -> set[str]:
    """Every form of a credential: itself, base64'd, and as (base64 of) an ``auth`` value."""
    forms = _fragments(value) | _fragments(_b64(value.encode()))  # base64 once, or twice (Secret data)
    if user is not None:
        auth = _b64(f"{user}:{value}".encode())
        forms |= _fragments(auth)  # the auth value, and a Secret's data holding it (base64 twice)
    return {f for f in forms if len(f) >= 16}


@dataclass
class Kinds:
    """Every credential kind, with the strings that must not appear anywhere."""

    forms: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: str, value: str, user: str | None = None) -> str:
        self.forms.setdefault(kind, set()).update(encodings(value, user))
        return value

    def add_literal(self, kind: str, *texts: str) -> None:
        self.forms.setdefault(kind, set()).update(t for t in texts if len(t) >= 16)

    def hits(self, text: str) -> list[tuple[str, str]]:
        return [(kind, form) for kind, forms in self.forms.items() for form in forms if form in text]


KINDS = Kinds()
P_AUTH = KINDS.add(".dockerconfigjson auth", _value("auth"), "u-auth")
P_USERPASS = KINDS.add(".dockerconfigjson username+password", _value("userpass"), "u-up")
P_IDTOKEN = KINDS.add(".dockerconfigjson identitytoken", _value("idtoken"))
P_REGTOKEN = KINDS.add(".dockerconfigjson registrytoken", _value("regtoken"))
P_DOCKERCFG = KINDS.add(".dockercfg", _value("dockercfg"), "u-cfg")
P_NODE = KINDS.add("node docker config file", _value("nodecfg"), "u-node")
P_WRONG = KINDS.add("wrong password (htpasswd registry)", _value("wrong"), "u-auth")
P_TOKEN_PW = KINDS.add("token server password", _value("tokenpw"), "tok-user")
P_TOKEN_WRONG = KINDS.add("wrong password (token server)", _value("tokenwrong"), "tok-user")
P_REFRESH = KINDS.add("token server refresh token", _value("refresh"))
P_AWS = KINDS.add("AWS secret access key", _value("awssecret"))
P_GCP = KINDS.add("GCP access token", _value("gcptoken"), "oauth2accesstoken")
P_NOCOLON = KINDS.add("malformed: auth without ':'", _value("nocolon"))
P_BADB64 = KINDS.add("malformed: auth not base64", _value("badbase64"))
P_NOTJSON = KINDS.add("malformed: not JSON", _value("notjson"))
P_WRONGTYPE = KINDS.add("malformed: wrong field type", _value("wrongtype"))
P_DATA = KINDS.add("malformed: Secret data not base64", _value("databad"))
KINDS.add_literal("ECR authorization token", ECR_PASSWORD, _b64(f"AWS:{ECR_PASSWORD}".encode()))
BEARER = "token server bearer token"
#: every bearer token the token server issued this run (filled as it issues them)
ISSUED: list[str] = []


class RecordingTokenServer(TokenServer):
    """The tests' token server, remembering every bearer token it issued (to search for them)."""

    issued: list[str]

    def issue_token(self, username: str | None, scopes: Any) -> tuple[str, list[dict[str, Any]]]:
        token, access = super().issue_token(username, scopes)
        self.issued.append(token)
        return token, access


def bearer_forms(tokens: list[str]) -> set[str]:
    return {t for token in tokens for t in (token, token.rsplit(".", 1)[-1])}


# -- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    basic: RegistryProcess
    token_registry: RegistryProcess
    token_server: RecordingTokenServer
    ecr: RegistryProcess
    gcp_registry: RegistryProcess
    gcp: FakeGcp
    moto: MotoServer
    role: str
    ecr_repo: str
    tmp: Path
    config: dict[str, Any]


def _dockerconfigjson(auths: Mapping[str, Any]) -> bytes:
    return json.dumps({"auths": auths}).encode()


def secrets_of(w: World) -> dict[str, tuple[str, dict[str, bytes]]]:
    """name -> (type, data) of every pull secret the pods below use."""
    b, t = w.basic.host, w.token_registry.host
    djson = "kubernetes.io/dockerconfigjson"
    return {
        "s-auth": (
            djson,
            {".dockerconfigjson": _dockerconfigjson({b: {"auth": _b64(f"u-auth:{P_AUTH}".encode())}})},
        ),
        "s-userpass": (
            djson,
            {".dockerconfigjson": _dockerconfigjson({b: {"username": "u-up", "password": P_USERPASS}})},
        ),
        "s-tokens": (
            djson,
            {
                ".dockerconfigjson": _dockerconfigjson(
                    {b: {"identitytoken": P_IDTOKEN, "registrytoken": P_REGTOKEN}}
                )
            },
        ),
        "s-dockercfg": (
            "kubernetes.io/dockercfg",
            {".dockercfg": json.dumps({b: {"auth": _b64(f"u-cfg:{P_DOCKERCFG}".encode())}}).encode()},
        ),
        "s-wrong": (
            djson,
            {".dockerconfigjson": _dockerconfigjson({b: {"auth": _b64(f"u-auth:{P_WRONG}".encode())}})},
        ),
        "s-token": (
            djson,
            {".dockerconfigjson": _dockerconfigjson({t: {"username": "tok-user", "password": P_TOKEN_PW}})},
        ),
        "s-token-wrong": (
            djson,
            {
                ".dockerconfigjson": _dockerconfigjson(
                    {t: {"auth": _b64(f"tok-user:{P_TOKEN_WRONG}".encode())}}
                )
            },
        ),
        "m-nocolon": (
            djson,
            {".dockerconfigjson": _dockerconfigjson({b: {"auth": _b64(P_NOCOLON.encode())}})},
        ),
        "m-badbase64": (djson, {".dockerconfigjson": _dockerconfigjson({b: {"auth": f"{P_BADB64}%%"}})}),
        "m-notjson": (
            djson,
            {".dockerconfigjson": f'{{"auths": {{"{b}": {{"password": "{P_NOTJSON}"'.encode()},
        ),
        "m-wrongtype": (
            djson,
            {".dockerconfigjson": _dockerconfigjson({b: {"username": ["u"], "password": P_WRONGTYPE}})},
        ),
    }


#: pod name -> (image kind, pull secrets, nodeSelector pool, the outcome the check must give)
PODS: dict[str, tuple[str, tuple[str, ...], str | None, str]] = {
    "auth": ("basic", ("s-auth",), None, "pullable"),
    "userpass": ("basic", ("s-userpass",), None, "pullable"),
    "tokens": ("basic", ("s-tokens",), None, "unauthorized"),
    "dockercfg": ("basic", ("s-dockercfg",), None, "pullable"),
    "wrong": ("basic", ("s-wrong",), None, "unauthorized"),
    "node": ("node", (), None, "pullable"),
    "token": ("token", ("s-token",), None, "pullable"),
    "token-wrong": ("token", ("s-token-wrong",), None, "unauthorized"),
    "ecr": ("ecr", (), "aws", "pullable"),
    "gcp": ("gcp", (), "gcp", "pullable"),
    "nocolon": ("basic", ("m-nocolon",), None, "secret-malformed"),
    "badbase64": ("basic", ("m-badbase64",), None, "secret-malformed"),
    "notjson": ("basic", ("m-notjson",), None, "secret-malformed"),
    "wrongtype": ("basic", ("m-wrongtype",), None, "secret-malformed"),
}


def image_of(w: World, kind: str) -> str:
    return {
        "basic": f"{w.basic.host}/team/app:1",
        "node": f"{w.basic.host}/node/app:1",
        "token": f"{w.token_registry.host}/team/app:1",
        "ecr": f"{ecr_host()}/{w.ecr_repo}:1",
        "gcp": AR_IMAGE,
    }[kind]


def pod_manifest(w: World, name: str, namespace: str) -> dict[str, Any]:
    kind, pull, pool, _ = PODS[name]
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image_of(w, kind)}]}
    if pull:
        spec["imagePullSecrets"] = [{"name": s} for s in pull]
    if pool:
        spec["nodeSelector"] = {"pool": pool}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def secret_manifest(name: str, type_: str, data: Mapping[str, bytes], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": type_,
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: _b64(v) for k, v in data.items()},
    }


@pytest.fixture(scope="module")
def world(
    moto_session: MotoServer, registry_ecr: RegistryProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("sentinel")
    users = {"u-auth": P_AUTH, "u-up": P_USERPASS, "u-cfg": P_DOCKERCFG, "u-node": P_NODE}
    token_server = RecordingTokenServer({"tok-user": P_TOKEN_PW})
    token_server.issued = ISSUED
    token_server.grant("tok-user", "team/*", ("pull",))
    token_server.refresh_token = P_REFRESH
    with (
        RegistryProcess("htpasswd", users=users) as basic,
        token_server,
        RegistryProcess("token", token_server=token_server) as token_registry,
        RegistryProcess("htpasswd", users={"oauth2accesstoken": P_GCP}) as gcp_registry,
        FakeGcp(P_GCP) as gcp,
    ):
        for path in ("team/app", "node/app"):
            push_image(basic, path, "1", credentials=basic.push_credentials)
        push_image(token_registry, "team/app", "1", credentials=token_registry.push_credentials)
        # GCP: node pool SA nodes@acme-prod reads the repository images in acme-shared
        gcp.add_project("acme-prod", "222")
        gcp.add_project("acme-shared", "111", "folders/9")
        gcp.folders["folders/9"] = FakeProject("", "organizations/5", [])
        gcp.organizations["organizations/5"] = []
        ar_repo = gcp.add_repository("acme-shared", "us", "images")
        ar_repo.bindings.append(binding("roles/artifactregistry.reader", f"serviceAccount:{NODE_SA}"))
        pushed = push_image(gcp_registry, "acme-shared/images/team/web", "1.4.2")
        ar_repo.tags["team/web"] = {"1.4.2": pushed.digest}
        # ECR: a node role with the managed read-only policy, a repository holding tag 1
        suffix = secrets.token_hex(3)
        ecr_repo = f"team/sentinel-{suffix}"
        make_repository(moto_session, ecr_repo)
        push_image(registry_ecr, ecr_repo, "1", credentials=registry_ecr.push_credentials)
        role = make_role(moto_session, f"ng-sentinel-{suffix}", managed=[READ_ONLY])
        node_config = tmp / "node-config.json"
        node_config.write_text(
            json.dumps({"auths": {f"{basic.host}/node": {"auth": _b64(f"u-node:{P_NODE}".encode())}}})
        )
        token_file = tmp / "gcp-token"
        token_file.write_text(P_GCP + "\n")
        services = ("artifactregistry", "container", "cloudresourcemanager", "iamcredentials")
        config = {
            "network": {"allowLoopback": True, "plainHttp": [basic.host, token_registry.host]},
            "cluster": {
                "nodeDockerConfig": str(node_config),
                "nodeGroups": [
                    {"name": "ng-aws", "selector": {"pool": "aws"}, "identity": {"awsRoleArn": role}},
                    {
                        "name": "ng-gcp",
                        "selector": {"pool": "gcp"},
                        "identity": {"gcpServiceAccount": NODE_SA, "scopes": GKE_SCOPES},
                    },
                ],
            },
            "aws": {
                "region": "us-east-1",
                "endpoints": moto_session.endpoints(),
                "registryEndpoints": {ecr_host(ACCOUNT): registry_ecr.url},
            },
            "gcp": {
                "endpoints": {s: gcp.url for s in services},
                "registryEndpoints": {"us-docker.pkg.dev": gcp_registry.url},
                "accessTokenFile": str(token_file),
            },
        }
        yield World(
            basic,
            token_registry,
            token_server,
            registry_ecr,
            gcp_registry,
            gcp,
            moto_session,
            role,
            ecr_repo,
            tmp,
            config,
        )


@pytest.fixture
def aws_sentinel_env(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """pullguard's own AWS credentials: the secret key is a sentinel too (moto accepts any key)."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", P_AWS)


# -- surfaces -------------------------------------------------------------------------------------


@dataclass
class Surfaces:
    texts: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, text: str) -> None:
        self.texts[name] = self.texts.get(name, "") + text

    def hits(self) -> list[tuple[str, str, str]]:
        KINDS.forms[BEARER] = bearer_forms(ISSUED)
        return [
            (surface, kind, form) for surface, text in self.texts.items() for kind, form in KINDS.hits(text)
        ]


FORMATS = ("text", "json", "sarif", "junit", "github")


def _cli_input(w: World, namespace: str = "shop") -> str:
    docs = [secret_manifest(n, t, d, namespace) for n, (t, d) in secrets_of(w).items()]
    docs += [pod_manifest(w, name, namespace) for name in PODS]
    return manifests(*docs)


@contextmanager
def debug_logs() -> Iterator[io.StringIO]:
    """Logging configured exactly as ``pullguard serve --log-level debug`` does, into a buffer."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LIBRARIES}
    buffer = io.StringIO()
    try:
        logs.configure("debug")
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(buffer)
        yield buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


def assert_clean(surfaces: Surfaces, expected: int) -> None:
    hits = surfaces.hits()
    kinds = len(KINDS.forms)
    print(f"\nsentinel: {kinds} credential kinds x {len(surfaces.texts)} surfaces, {len(hits)} hits")
    for name, text in surfaces.texts.items():
        print(f"  {name}: {len(text)} characters searched")
    assert len(surfaces.texts) == expected, sorted(surfaces.texts)
    assert all(surfaces.texts.values()), [n for n, t in surfaces.texts.items() if not t]
    assert hits == [], hits[:10]


def outcomes_of(report: Mapping[str, Any]) -> dict[str, str]:
    return {r["object"]["name"]: r["images"][0]["outcome"] for r in report["results"] if r["images"]}


EXPECTED = {name: outcome for name, (_, _, _, outcome) in PODS.items()}


# -- the CLI --------------------------------------------------------------------------------------


def test_the_search_finds_every_planted_credential_where_it_was_planted(world: World) -> None:
    """The control: the same search over the input (Secret manifests, base64 data) finds them all."""
    planted = Surfaces()
    planted.add("input", _cli_input(world) + json.dumps(world.config))
    planted.add("input", (world.tmp / "node-config.json").read_text() + (world.tmp / "gcp-token").read_text())
    found = {kind for _, kind, _ in planted.hits()}
    secret_kinds = {
        k for k in KINDS.forms if k not in (BEARER, "AWS secret access key", "token server refresh token")
    }
    assert found >= secret_kinds - {"malformed: Secret data not base64", "ECR authorization token"}, sorted(
        secret_kinds - found
    )


def test_the_cli_shows_no_credential_in_any_output_or_its_debug_log(
    world: World, aws_sentinel_env: None, tmp_path: Path
) -> None:
    surfaces = Surfaces()
    config = write_config(tmp_path, world.config)
    stdin = _cli_input(world)
    with debug_logs() as log:
        for fmt in FORMATS:
            r = run(["check", "--config", config, "--output", fmt, "-"], stdin)
            assert r.exit_code == 1, (fmt, r.stdout[-2000:], r.stderr[-2000:])
            surfaces.add(f"check --output {fmt}", r.stdout + r.stderr)
            if fmt == "json":
                assert outcomes_of(r.json) == EXPECTED
        for secret, image_kind, outcome in (
            ("s-auth", "basic", "pullable"),
            ("s-wrong", "basic", "unauthorized"),
            ("s-token", "token", "pullable"),
            ("m-nocolon", "basic", "secret-malformed"),
        ):
            type_, data = secrets_of(world)[secret]
            secret_file = tmp_path / f"{secret}.yaml"
            secret_file.write_text(yaml.safe_dump(secret_manifest(secret, type_, data, "shop")))
            for fmt in ("text", "json"):
                args = ["explain", image_of(world, image_kind), "--config", config, "--output", fmt]
                r = run([*args, "--namespace", "shop", "--secret-file", str(secret_file)])
                surfaces.add(f"explain --output {fmt}", r.stdout + r.stderr)
                if fmt == "json":
                    assert json.loads(r.stdout)["outcome"] == outcome, r.stdout
        # a Secret whose data is not base64 at all: bad input (exit 2), the field named
        bad = secret_manifest("m-data", "kubernetes.io/dockerconfigjson", {}, "shop")
        bad["data"] = {".dockerconfigjson": f"{P_DATA}!!"}
        r = run(["check", "--config", config, "-"], manifests(bad, pod_manifest(world, "auth", "shop")))
        assert r.exit_code == 2 and 'data[".dockerconfigjson"]' in r.stderr, r.stderr
        surfaces.add("check --output text", r.stdout + r.stderr)
    surfaces.add("CLI log (debug)", log.getvalue())
    assert_clean(surfaces, expected=len(FORMATS) + 3)


# -- the served webhook ---------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    ca: trustme.CA
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        import ssl

        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        transport = httpx.HTTPTransport(verify=ctx, socket_options=NODELAY)
        return httpx.Client(base_url=self.url, transport=transport, timeout=30)


@contextmanager
def serve(config: Mapping[str, Any], tmp: Path, kubeconfig: Path) -> Iterator[Served]:
    """``pullguard serve --log-level debug`` as its own process, its stderr kept in a file."""
    ca = trustme.CA()
    cert, key = write_cert(ca, tmp / "certs")
    config_file = tmp / "serve.yaml"
    config_file.write_text(yaml.safe_dump(dict(config)))
    log = tmp / "serve.log"
    command = [str(PULLGUARD), "serve", "--config", str(config_file), "--port", "0", "--log-level", "debug"]
    command += ["--tls-cert", str(cert), "--tls-key", str(key), "--kubeconfig", str(kubeconfig)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command, stderr=sink, stdout=subprocess.DEVNULL, cwd=tmp, env=dict(os.environ)
        )
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            for line in log.read_text(errors="replace").splitlines():
                if '"listening"' in line:
                    url = json.loads(line)["url"]
            time.sleep(0.05)
        assert url is not None, log.read_text()[-3000:]
        yield Served(url, ca, proc, log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


MODES = {"sent-enforce": "enforce", "sent-warn": "warn", "sent-audit": "audit"}


def test_the_served_webhook_shows_no_credential_in_responses_metrics_or_debug_log(
    world: World, aws_sentinel_env: None, fake_api: FakeApiServer, tmp_path: Path
) -> None:
    surfaces = Surfaces()
    suffix = secrets.token_hex(3)
    for ns, mode in MODES.items():
        namespace = f"{ns}-{suffix}"
        fake_api.add_namespace(namespace, {"pullguard.io/mode": mode})
        for name, (type_, data) in secrets_of(world).items():
            fake_api.add_secret(namespace, name, data, type_)
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig")
    with serve(world.config, tmp_path, kubeconfig) as served, served.client() as client:
        for ns, mode in MODES.items():
            namespace = f"{ns}-{suffix}"
            got: dict[str, str] = {}
            for name in PODS:
                body = review(pod_manifest(world, name, namespace))
                resp = client.post("/validate?timeout=10s", content=json.dumps(body))
                assert resp.status_code == 200, resp.text
                surfaces.add(f"webhook responses ({mode})", resp.text)
                answer = resp.json()["response"]
                verdict = json.loads(answer["auditAnnotations"]["verdict"])
                got[name] = verdict["images"][0]["outcome"]
                assert answer["allowed"] is (mode != "enforce" or EXPECTED[name] == "pullable"), (
                    name,
                    answer,
                )
                if mode == "warn" and EXPECTED[name] != "pullable":
                    assert answer["warnings"], answer
            assert got == EXPECTED, (mode, got)
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "pullguard_admission" in metrics.text
        surfaces.add("/metrics", metrics.text)
    served_log = served.log.read_text(errors="replace")
    assert served_log.count('"msg":"admission"') == len(MODES) * len(PODS)  # one line per review
    surfaces.add("serve log (debug)", served_log)
    assert world.token_server.issued, "the token registry was never asked: the bearer path did not run"
    assert_clean(surfaces, expected=len(MODES) + 2)


# -- exception messages ---------------------------------------------------------------------------


def _described(exc: BaseException) -> str:
    return f"{exc}\n{exc!r}\n{exc.args!r}\n" + "".join(traceback.format_exception(exc))


def test_errors_raised_on_malformed_credentials_show_no_credential(world: World, tmp_path: Path) -> None:
    surfaces = Surfaces()
    raised: list[str] = []
    for name, (type_, data) in secrets_of(world).items():
        if not name.startswith("m-"):
            continue
        with pytest.raises(SecretMalformedError) as err:
            entries_from_secret("shop", name, type_, data)
        assert (err.value.field or "").startswith(".dockerconfigjson"), err.value.field
        raised.append(type(err.value).__name__)
        surfaces.add("exception messages", _described(err.value))
        with pytest.raises(DockerCfgError) as cfg_err:
            parse_docker_config_json(data[".dockerconfigjson"])
        surfaces.add("exception messages", _described(cfg_err.value))
    bad = secret_manifest("m-data", "kubernetes.io/dockerconfigjson", {}, "shop")
    bad["data"] = {".dockerconfigjson": f"{P_DATA}!!"}
    with pytest.raises(InputError) as input_err:
        secret_from_dict(bad, "shop", "sentinel.yaml#1")
    assert input_err.value.field == 'data[".dockerconfigjson"]'
    surfaces.add("exception messages", _described(input_err.value))
    node_file = tmp_path / "config.json"
    node_file.write_text(json.dumps({"auths": {"a.io": {"auth": _b64(P_NOCOLON.encode())}}}))
    node, finding = read_node_docker_config(str(node_file))
    assert node is None and finding is not None and finding.code == "node-docker-config-malformed"
    surfaces.add("exception messages", finding.message)
    assert len(raised) == 4
    assert_clean(surfaces, expected=1)
