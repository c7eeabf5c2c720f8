"""Hypothesis over the parsers hostile input reaches first: references, pull secrets, configuration.

Properties, not only "it does not crash":

* **only the documented error escapes** — ``InvalidReferenceError`` from ``core.reference``,
  ``DockerCfgError``/``SecretMalformedError`` from ``core.dockercfg``, ``InputError`` from
  ``core.objects``, ``ConfigError`` from ``settings`` (core/errors.py lists the tree); anything
  else fails the example;
* **every error names where** — a reference error carries its reason and Go's upstream text, a
  docker-config error the path of the entry (``auths["ghcr.io"].auth``), a Secret error the
  ``data[...]``/``metadata`` field, a configuration error a key path for every problem;
* **the parser agrees with itself** — a parsed reference printed and parsed again is the same
  reference (``String()``, ``FamiliarString()`` and containerd's ``ParseDockerRef`` form all
  round-trip, as distribution/reference's own ``TestParseNormalizedNamed`` requires); a valid
  configuration dumped by its aliases and parsed again is the same configuration;
* **no credential in an error** — every password the generator plants is distinctive; no error
  message, ``repr`` or decoded entry's ``repr`` shows it or its base64 forms.

``make fuzz`` runs 100,000 examples per target (``PULLGUARD_FUZZ_EXAMPLES``); ``make test`` 300.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.tally import EXAMPLES, counts_for, tally
from webhook.core.dockercfg import (
    DockerCfgError,
    decode_auth_field,
    entries_from_secret,
    parse_docker_config_json,
    parse_dockercfg,
)
from webhook.core.errors import ConfigError, InputError, InvalidReferenceError, SecretMalformedError
from webhook.core.objects import secret_from_dict
from webhook.core.reference import (
    DEFAULT_DOMAIN,
    ImageReference,
    kubelet_parse_image_name,
    parse_named,
    parse_normalized_named,
)
from webhook.settings import Config, load_config, parse_config

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TIMEOUT = pytest.mark.timeout(120 + EXAMPLES // 40)  # generous: make fuzz may run on a loaded machine

# ---- references -------------------------------------------------------------------------------

_UPSTREAM = (
    "invalid reference format",
    "repository name must be lowercase",
    "repository name must have at least one component",
    "repository name must not be more than 255 characters",
    "invalid checksum digest format",
    "invalid checksum digest length",
    "unsupported digest algorithm",
    "repository name must be canonical",
)
_component = st.from_regex(r"\A[a-z0-9]{1,6}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,4}){0,2}\Z")
_domains = st.sampled_from(
    [
        "",
        "localhost",
        "localhost:5000",
        "a.io",
        "registry.example.com:443",
        "[::1]:5000",
        "[fc00::1]",
        "127.0.0.1:5000",
        "Upper.Example",
        "index.docker.io",
        "docker.io",
        "xn--80ak6aa92e.com",
        "foo_bar.com",
    ]
)
_tags = st.none() | st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_digests = st.none() | st.sampled_from(["sha256", "sha512"]).flatmap(
    lambda alg: st.text("0123456789abcdef", min_size=64 if alg == "sha256" else 128).map(
        lambda hexes: f"{alg}:{hexes[: 64 if alg == 'sha256' else 128]}"
    )
)


@st.composite
def grammar_references(draw: st.DrawFn) -> str:
    """Mostly valid references built from the grammar of distribution/reference regexp.go."""
    domain = draw(_domains)
    path = "/".join(draw(st.lists(_component, min_size=1, max_size=3)))
    text = f"{domain}/{path}" if domain else path
    if tag := draw(_tags):
        text += f":{tag}"
    if digest := draw(_digests):
        text += f"@{digest}"
    return text


_edits = st.sampled_from(["insert", "replace", "delete"])
_hostile_chars = st.sampled_from([*":/@.-_[]%A Z\t\n\u0130ſé\x00#?*", "://", "@sha256:"])


@st.composite
def damaged_references(draw: st.DrawFn) -> str:
    """A grammar reference with a few characters replaced, inserted or deleted."""
    text = list(draw(grammar_references()))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(text)))
        op = draw(_edits)
        char = draw(_hostile_chars)
        if op == "insert" or not text:
            text.insert(where, char)
        elif op == "replace":
            text[min(where, len(text) - 1)] = char
        else:
            del text[min(where, len(text) - 1)]
    return "".join(text)


references = st.one_of(
    grammar_references(),
    damaged_references(),
    st.text(alphabet=st.sampled_from(list("abz09.:/@-_[]A")), max_size=40),
    st.text(max_size=300),
)


def _same(a: ImageReference, b: ImageReference) -> bool:
    return (a.domain, a.path, a.tag, a.digest) == (b.domain, b.path, b.tag, b.digest)


@TIMEOUT
@counts_for("reference: parse -> format -> parse")
@FUZZ
@given(text=references)
def test_a_reference_parses_to_a_fixed_point_or_fails_with_a_reason(text: str) -> None:
    tally("reference: parse -> format -> parse")
    try:
        ref = parse_normalized_named(text)
    except InvalidReferenceError as exc:
        assert exc.reason and exc.upstream, exc
        assert exc.upstream in _UPSTREAM or exc.upstream.startswith(
            ("invalid reference format: repository name", "invalid repository name (")
        ), exc.upstream
        assert str(exc).startswith("invalid image reference "), str(exc)
        # the reference and the reason are clipped: a 300-character input cannot flood the message
        assert len(str(exc)) < 2000, len(str(exc))
        return
    # String() round-trips and is canonical (ParseNamed accepts it)
    again = parse_normalized_named(str(ref))
    assert _same(again, ref), (text, str(ref), again)
    assert _same(parse_named(str(ref)), ref)
    # FamiliarString() round-trips: the short form a user writes reads back as the same reference —
    # except, exactly as in Go, a Docker Hub path whose first component looks like a host
    # (docker.io/a.b/c familiarises to "a.b/c", which splitDockerDomain reads as host a.b)
    first = ref.path.split("/")[0]
    if not (ref.domain == DEFAULT_DOMAIN and (first == "localhost" or "." in first or ":" in first)):
        assert _same(parse_normalized_named(ref.familiar_string), ref), (text, ref.familiar_string)
    # what containerd pulls names the same repository, and the digest when there is one
    pulled = parse_normalized_named(ref.pull_reference)
    assert (pulled.name, pulled.digest) == (ref.name, ref.digest)
    assert pulled.tag == (None if ref.digest else (ref.tag or "latest"))
    # kubelet's view agrees
    name, _, digest = kubelet_parse_image_name(text)
    assert (name, digest) == (ref.name, ref.digest or "")
    assert ref.domain != "index.docker.io"
    if ref.domain == DEFAULT_DOMAIN:
        assert "/" in ref.path


# ---- docker config documents and pull secrets ---------------------------------------------------

PASSWORD_MARK = "PGFUZZPW"
_password = st.text(
    alphabet=st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc"], blacklist_characters=":"),
    max_size=10,
).map(lambda s: f"{PASSWORD_MARK}{s}{PASSWORD_MARK}")
_user = st.text(
    alphabet=st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc"], blacklist_characters=":"),
    max_size=8,
)
_keys = st.sampled_from(["ghcr.io", "https://index.docker.io/v1/", "127.0.0.1:5000", "*.a.io", "", "é"])
_junk = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.lists(st.integers(), max_size=2)
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


@st.composite
def entries(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """One registry entry (maybe with wrong types or a broken ``auth``) and its planted password."""
    user, password = draw(_user), draw(_password)
    entry: dict[str, Any] = {}
    shape = draw(st.sampled_from(["auth", "userpass", "both", "tokens", "broken-auth", "no-colon", "wrong"]))
    if shape in ("auth", "both"):
        entry["auth"] = _b64(f"{user}:{password}")
    if shape in ("userpass", "both"):
        entry.update(username=user, password=password)
    if shape == "tokens":  # kubelet ignores these fields; they must never surface either
        entry.update(identitytoken=password, registrytoken=password, auth=_b64(f"{user}:{password}"))
    if shape == "broken-auth":
        entry["auth"] = _b64(f"{user}:{password}")[: draw(st.integers(1, 6))] + draw(st.sampled_from("!*é "))
    if shape == "no-colon":
        entry["auth"] = _b64(password)
    if shape == "wrong":
        entry[draw(st.sampled_from(["auth", "username", "password", "email", "Auth", "PASSWORD"]))] = draw(
            _junk
        )
        entry["password"] = password
    return entry, password


_entry_lists = st.lists(st.tuples(_keys, entries()), max_size=3)
_odd_documents: st.SearchStrategy[Any] = st.sampled_from(
    [[], "x", 1, None, {"auths": []}, {"auths": "x"}, {"HttpHeaders": 1}]
)


@st.composite
def docker_configs(draw: st.DrawFn) -> tuple[bytes, list[str], str]:
    """(document, planted passwords, shape) for ``.dockerconfigjson`` or ``.dockercfg``."""
    pairs = draw(_entry_lists)
    auths: dict[str, Any] = {key: entry for key, (entry, _) in pairs}
    passwords = [pw for _, (_, pw) in pairs]
    shape = draw(st.sampled_from(["dockerconfigjson", "dockercfg"]))
    doc: Any = {"auths": auths} if shape == "dockerconfigjson" else auths
    if draw(st.integers(0, 9)) == 0:
        doc = draw(_odd_documents)
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    if draw(st.integers(0, 9)) == 0:  # cut it short: not JSON any more
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    return raw, passwords, shape


def _no_password(text: str, passwords: list[str]) -> None:
    assert PASSWORD_MARK not in text, text
    for pw in passwords:
        assert pw not in text
        for form in (_b64(pw), _b64(f":{pw}")[4:]):
            assert len(form) < 12 or form not in text, text


@TIMEOUT
@counts_for("pull secret: .dockerconfigjson/.dockercfg bytes")
@FUZZ
@given(
    doc=docker_configs()
    | st.tuples(st.binary(max_size=200), st.just([]), st.sampled_from(["dockercfg", "dockerconfigjson"]))
)
def test_a_docker_config_decodes_or_names_the_entry_and_never_shows_a_password(
    doc: tuple[bytes, list[str], str],
) -> None:
    tally("pull secret: .dockerconfigjson/.dockercfg bytes")
    raw, passwords, shape = doc
    parse = parse_docker_config_json if shape == "dockerconfigjson" else parse_dockercfg
    try:
        decoded = parse(raw)
    except DockerCfgError as exc:
        assert exc.reason and exc.upstream
        if exc.field:
            prefix = "auths[" if shape == "dockerconfigjson" else "["
            assert exc.field.startswith(prefix) or exc.field.lower().startswith(("auths", "httpheaders")), (
                exc.field
            )
        _no_password(f"{exc} {exc!r} {exc.field} {exc.upstream}", passwords)
        return
    for entry in decoded:
        _no_password(repr(entry), passwords)
        assert entry.password.reveal() in passwords or entry.password.reveal() == "" or not passwords


@TIMEOUT
@counts_for("pull secret: auth field base64(user:password)")
@FUZZ
@given(user=_user, password=_password)
def test_an_auth_field_decodes_back_to_its_user_and_password(user: str, password: str) -> None:
    tally("pull secret: auth field base64(user:password)")
    got_user, got_password = decode_auth_field(_b64(f"{user}:{password}"))
    assert (got_user, got_password.reveal()) == (user, password)
    _no_password(f"{got_password} {got_password!r} {got_password:>20}", [password])


_b64_or_junk = st.one_of(
    docker_configs().map(lambda d: base64.b64encode(d[0]).decode()),
    st.text(max_size=12),
    _junk,
)


_secret_keys = st.sampled_from([".dockerconfigjson", ".dockercfg", "other", ""])
_metadata = st.sampled_from(
    [
        {"name": "regcred", "namespace": "shop"},
        {"name": "regcred"},
        {"name": ""},
        {"name": 3},
        {},
        [],
        "x",
        {"name": "a", "namespace": 1},
    ]
)
_secret_types = (
    st.sampled_from(["kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg", "Opaque"]) | _junk
)
_data = st.dictionaries(_secret_keys, _b64_or_junk, max_size=2) | _junk
_string_data = (
    st.dictionaries(
        _secret_keys, docker_configs().map(lambda d: d[0].decode("utf-8", "replace")) | _junk, max_size=2
    )
    | _junk
)
#: Secret manifests: right or wrong types, data and stringData, valid or broken base64.
secret_objects = st.fixed_dictionaries(
    {"apiVersion": st.just("v1"), "kind": st.just("Secret"), "metadata": _metadata, "data": _data},
    optional={"type": _secret_types, "stringData": _string_data},
)


@TIMEOUT
@counts_for("pull secret: Secret objects")
@FUZZ
@given(obj=secret_objects)
def test_a_secret_object_is_read_or_refused_with_its_field(obj: dict[str, Any]) -> None:
    tally("pull secret: Secret objects")
    try:
        secret = secret_from_dict(obj, "default", "fuzz.yaml#1")
    except InputError as exc:
        assert exc.field and exc.field.split("[")[0].split(".")[0] in (
            "metadata",
            "type",
            "data",
            "stringData",
        )
        assert exc.field.split("[")[0] in str(exc), (exc.field, str(exc))
        assert PASSWORD_MARK not in str(exc)
        return
    try:
        found = entries_from_secret(secret.namespace, secret.name, secret.type, secret.data)
    except SecretMalformedError as exc:
        assert exc.field and exc.field.startswith((".dockerconfigjson", ".dockercfg")), exc.field
        assert str(exc).startswith(f"secret {secret.namespace}/{secret.name}: {exc.field}: ")
        assert PASSWORD_MARK not in f"{exc} {exc!r} {exc.upstream} {exc.reason}"
        return
    if found is not None:
        assert PASSWORD_MARK not in repr(found)
    assert PASSWORD_MARK not in repr(secret)


# ---- configuration -------------------------------------------------------------------------------

_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-5, 100)
    | st.floats(-1, 40, allow_nan=False)
    | st.text(max_size=6)
)


def _valid_or(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good``, or a scalar or list of the wrong type."""
    return st.one_of(good, _scalar, st.lists(_scalar, max_size=2))


_role = "arn:aws:iam::111122223333:role/ng"
_sa = "nodes@acme.iam.gserviceaccount.com"


_identities = (
    st.sampled_from(
        [
            {"awsRoleArn": _role},
            {"gcpServiceAccount": _sa, "scopes": ["s"]},
            {"fargatePodExecutionRoleArn": _role},
            {"awsRoleArn": "nope"},
            {"awsRoleArn": _role, "gcpServiceAccount": _sa},
            {"awsRoleArn": _role, "scopes": []},
        ]
    )
    | _scalar
)
_node_group = st.fixed_dictionaries(
    {},
    optional={
        "name": _valid_or(st.sampled_from(["ng-a", "ng-b"])),
        "platform": _valid_or(st.sampled_from(["linux/amd64", "linux/arm64/v8", "windows/amd64", "linux"])),
        "selector": _valid_or(st.dictionaries(st.sampled_from(["a", "b"]), st.text(max_size=3), max_size=2)),
        "identity": _identities,
        "taints": _valid_or(
            st.just([{"key": "k", "effect": "NoSchedule"}]) | st.just([{"effect": "Sometimes"}])
        ),
    },
)
_CONFIG_PARTS: dict[str, st.SearchStrategy[Any]] = {
    "mode": _valid_or(st.sampled_from(["enforce", "warn", "audit", "Enforce"])),
    "onUnknown": _valid_or(st.sampled_from(["allow", "warn", "deny"])),
    "exemptNamespaces": _valid_or(st.lists(st.sampled_from(["kube-system", "x"]), max_size=2)),
    "exemptImages": _valid_or(
        st.lists(st.sampled_from(["registry.k8s.io/*", "a.io/b", "*", "/x", "a.io/[x]", "a?b/c"]), max_size=2)
    ),
    "timeouts": _valid_or(
        st.fixed_dictionaries({}, optional={"deadlineSeconds": _scalar, "requestSeconds": _scalar})
    ),
    "network": _valid_or(
        st.fixed_dictionaries(
            {},
            optional={
                "allowLoopback": _valid_or(st.booleans()),
                "plainHttp": _valid_or(
                    st.lists(st.sampled_from(["a.io:5000", "[::1]:5000", "http://x", "a/b"]), max_size=2)
                ),
                "caFile": _valid_or(st.just("/nonexistent/ca.pem")),
                "allowLinkLocal": _scalar,
            },
        )
    ),
    "cache": _valid_or(
        st.fixed_dictionaries({}, optional={"tagTTLSeconds": _scalar, "tagTtlSeconds": _scalar})
    ),
    "cluster": _valid_or(
        st.fixed_dictionaries(
            {},
            optional={
                "platforms": _valid_or(
                    st.lists(st.sampled_from(["linux/amd64", "linux/arm/v7", "beos/x"]), max_size=2)
                ),
                "nodeGroups": _valid_or(st.lists(_node_group, max_size=2)),
                "credentialProviders": _valid_or(
                    st.sampled_from(
                        [
                            "default",
                            "none",
                            [{"name": "ecr", "type": "ecr", "matchImages": ["*.dkr.ecr.*.amazonaws.com"]}],
                            [{"name": "x/y", "matchImages": []}],
                        ]
                    )
                ),
                "platformMatch": _valid_or(st.sampled_from(["compatible", "exact"])),
            },
        )
    ),
    "aws": _valid_or(
        st.fixed_dictionaries(
            {},
            optional={
                "region": _valid_or(st.just("eu-west-1")),
                "endpoints": _valid_or(
                    st.sampled_from([{"ecr": "http://127.0.0.1:1"}, {"s3": "http://x"}, {"ecr": "ftp://x"}])
                ),
            },
        )
    ),
    "gcp": _valid_or(
        st.fixed_dictionaries(
            {}, optional={"permissionCheck": _valid_or(st.sampled_from(["iam", "impersonate"]))}
        )
    ),
    "typoKey": _scalar,
}
#: Configuration documents close to DESIGN 1.3: each key valid, or the wrong type, or unknown.
configs = st.fixed_dictionaries({}, optional=_CONFIG_PARTS)


@TIMEOUT
@counts_for("configuration: documents -> parse_config")
@FUZZ
@given(doc=configs)
def test_a_configuration_is_valid_and_stable_or_every_problem_has_a_key_path(doc: dict[str, Any]) -> None:
    tally("configuration: documents -> parse_config")
    try:
        config = parse_config(doc, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.path, (problem, doc)
            top = problem.path.split(".")[0].split("[")[0]
            assert top in doc, (problem, doc)
            assert problem.message
            assert f"{problem.path}: " in str(exc)
        return
    assert "typoKey" not in doc
    dumped = config.model_dump(mode="json", by_alias=True)
    assert parse_config(dumped, "again") == config
    assert parse_config(yaml.safe_load(yaml.safe_dump(dumped)), "yaml") == config


_yaml_text = st.one_of(
    configs.map(yaml.safe_dump),
    configs.map(lambda d: yaml.safe_dump(d, default_flow_style=True)),
    st.text(alphabet=st.sampled_from(list("mode: enforce\n-[]{}'\"&*!|>#%@`\t ,?")), max_size=80),
    st.text(max_size=120),
    configs.map(lambda d: yaml.safe_dump(d) + yaml.safe_dump(d)),  # every key given twice
)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config") / "pullguard.yaml"


@TIMEOUT
@counts_for("configuration: YAML text -> load_config")
@FUZZ
@given(text=_yaml_text)
def test_a_configuration_file_loads_or_is_refused_with_a_config_error(config_file: Path, text: str) -> None:
    tally("configuration: YAML text -> load_config")
    config_file.write_text(text, encoding="utf-8")
    try:
        config = load_config(str(config_file))
    except ConfigError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        assert str(exc).startswith(f"configuration {config_file}: ")
        return
    assert isinstance(config, Config)
