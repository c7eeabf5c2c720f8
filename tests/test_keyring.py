"""kubelet's credential keyring: every keyring.json row, the domain-facts scenarios that are not in
the file, Go net/url key parsing and Go filepath.Match label globbing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from webhook.core.dockercfg import entries_from_secret
from webhook.core.errors import InvalidReferenceError, SecretMalformedError
from webhook.core.keyring import (
    DEFAULT_REGISTRY_KEY,
    Keyring,
    KeyringMatch,
    _go_match,  # reachable through hosts only for '*'; Go's other glob syntax is tested directly
    is_default_registry_match,
    normalize_key,
    url_host_and_path,
    urls_match,
)
from webhook.core.reference import parse_normalized_named

DATA = Path(__file__).parent / "data" / "conformance" / "keyring.json"
if not DATA.is_file():
    pytest.fail(f"conformance vectors missing: {DATA} (copy ../shared/conformance into tests/data)")
VECTORS: dict[str, Any] = json.loads(DATA.read_text())

FALLBACK_LABEL = f"{DEFAULT_REGISTRY_KEY} (default-registry fallback)"
Cred = tuple[str, str]  # (secret name, username)


def _keyring(secrets: list[dict[str, str]]) -> Keyring[Cred]:
    """MakeDockerKeyring over pod secrets, in order; SecretMalformedError aborts like kubelet."""
    keyring: Keyring[Cred] = Keyring()
    for secret in secrets:
        content = secret["content"].encode()
        data = {".dockerconfigjson": content, ".dockercfg": content}
        for entry in entries_from_secret("pod-ns", secret["name"], secret["type"], data) or []:
            keyring.add(entry.key, (secret["name"], entry.username))
    return keyring


def _matched_keys(matches: list[KeyringMatch[Cred]]) -> list[str]:
    keys: list[str] = []
    for m in matches:
        label = FALLBACK_LABEL if m.fallback else m.key
        if label not in keys:
            keys.append(label)
    return keys


# --- conformance: urls_match_and_default_registry -------------------------------------------


def _match_rows() -> list[Any]:
    rows = VECTORS["urls_match_and_default_registry"]
    return [pytest.param(r, id=f"{r['glob']}~{r['target']}") for r in rows if "glob" in r]


def _default_rows() -> list[Any]:
    rows = VECTORS["urls_match_and_default_registry"]
    return [pytest.param(r, id=r["image"] or "<empty>") for r in rows if "image" in r]


@pytest.mark.parametrize("row", _match_rows())
def test_urls_match_agrees_with_kubelet(row: dict[str, Any]) -> None:
    assert row.get("expected", row["actual"]) == row["actual"]
    assert urls_match(row["glob"], row["target"]) is row["actual"]


@pytest.mark.parametrize("row", _default_rows())
def test_default_registry_match_agrees_with_kubelet(row: dict[str, Any]) -> None:
    assert row.get("expected", row["actual"]) == row["actual"]
    assert is_default_registry_match(row["image"]) is row["actual"]


def test_every_urls_match_row_is_consumed() -> None:
    assert len(_match_rows()) + len(_default_rows()) == len(VECTORS["urls_match_and_default_registry"])


# --- conformance: scenarios -----------------------------------------------------------------


def _scenario_cases() -> list[Any]:
    cases = []
    for scenario in VECTORS["scenarios"]:
        for i, result in enumerate(scenario["results"]):
            cases.append(pytest.param(scenario, result, id=f"{scenario['id']}[{i}]:{result['image']}"))
    return cases


def _lookup_key(scenario: dict[str, Any], image: str) -> str:
    return image if scenario["mode"] == "raw" else parse_normalized_named(image).name


@pytest.mark.parametrize(("scenario", "result"), _scenario_cases())
def test_scenario_credentials_agree_with_kubelet(scenario: dict[str, Any], result: dict[str, Any]) -> None:
    try:
        keyring = _keyring(scenario["secrets"])
    except SecretMalformedError as exc:
        message = f"secret {exc.secret.rpartition('/')[2]}: {exc.upstream}"
        assert message == scenario["keyring_error"]
        assert result["error"] == f"keyring build failed: {message}"
        return
    assert "keyring_error" not in scenario
    assert keyring.index == (scenario["index_order"] or [])
    try:
        repo = _lookup_key(scenario, result["image"])
    except InvalidReferenceError as exc:
        assert exc.upstream == result["error"]
        return
    assert "error" not in result
    assert repo == result["lookup_key"]
    matches = keyring.lookup(repo)
    assert [{"secret": s, "username": u} for s, u in (m.value for m in matches)] == result["creds_in_order"]
    assert _matched_keys(matches) == result["matched_keys"]
    assert bool(matches) is result["found"]


@pytest.mark.parametrize(
    "scenario",
    [pytest.param(s, id=s["id"]) for s in VECTORS["scenarios"] if s.get("upstream_expect")],
)
def test_scenario_upstream_expectations_hold(scenario: dict[str, Any]) -> None:
    keyring = _keyring(scenario["secrets"])
    expect = scenario["upstream_expect"]
    for image in scenario["images"]:
        users = [m.value[1] for m in keyring.lookup(_lookup_key(scenario, image))]
        if image in expect:
            assert users == expect[image]
        if "found" in expect:
            assert bool(users) is expect["found"]
        if "first_username" in expect:
            assert users[0] == expect["first_username"]
        if "count" in expect:
            assert len(users) == expect["count"]
        if "count_at_most" in expect:
            assert len(users) <= expect["count_at_most"]
        if "users" in expect:
            assert users == expect["users"]


# --- domain-facts V-KR-3 scenarios that keyring.json does not carry -------------------------


def _secret(name: str, key: str, user: str, auth: str | None = None) -> dict[str, str]:
    import base64

    encoded = auth if auth is not None else base64.b64encode(f"{user}:x".encode()).decode()
    body = json.dumps({"auths": {key: {"auth": encoded}}})
    return {"name": name, "type": "kubernetes.io/dockerconfigjson", "content": body}


_EXTRA = {
    "port": [
        _secret("p443", "registry.example.com:443", "u443"),
        _secret("noport", "registry.example.com", "unoport"),
    ],
    "team": [_secret("team", "registry.example.com/team", "uteam")],
    "specificity": [
        _secret("exact", "reg.example.com", "uexact"),
        _secret("wildpath", "*.example.com/team", "uwild"),
        _secret("exactpath", "reg.example.com/team", "uexactpath"),
    ],
    "same-key": [
        _secret("first", "ghcr.io", "u1"),
        _secret("second", "https://ghcr.io", "u2"),
        _secret("third", "ghcr.io/v2/", "u3"),
    ],
    "v1v2": [
        _secret("a", "http://registry.local:5000", "ua"),
        _secret("b", "https://quay.io/v2/", "ub"),
        _secret("c", "https://quay.io/v2/org", "uc"),
        _secret("d", "registry.example.com/v1", "ud"),
        _secret("e", "registry.example.com/", "ue"),
    ],
    "upper": [_secret("upper", "Registry.Example.com", "uu")],
    "cloud": [
        _secret("ecr", "*.dkr.ecr.*.amazonaws.com", "AWS"),
        _secret("gar", "*.pkg.dev", "_json_key"),
        _secret("gcrwild", "*.gcr.io", "_token"),
    ],
    "org": [_secret("org", "docker.io/myorg", "uorg")],
    "tagged": [_secret("r", "registry.example.com/app", "u")],
}
_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("secrets", "image", "want_creds", "want_keys"),
    [
        # port-must-match-exactly
        pytest.param(
            "port", "registry.example.com/app", ["noport:unoport"], ["registry.example.com"], id="port-none"
        ),
        pytest.param(
            "port", "registry.example.com:443/app", ["p443:u443"], ["registry.example.com:443"], id="port-443"
        ),
        pytest.param("port", "registry.example.com:5000/app", [], [], id="port-other"),
        # path-prefix-is-string-prefix
        pytest.param(
            "team", "registry.example.com/team/app", ["team:uteam"], ["registry.example.com/team"], id="team"
        ),
        pytest.param(
            "team",
            "registry.example.com/teamx/app",
            ["team:uteam"],
            ["registry.example.com/team"],
            id="teamx",
        ),
        pytest.param("team", "registry.example.com/other/app", [], [], id="other"),
        # reverse-sort-not-specificity: '*' sorts below letters
        pytest.param(
            "specificity",
            "reg.example.com/team/app",
            ["exactpath:uexactpath", "exact:uexact", "wildpath:uwild"],
            ["reg.example.com/team", "reg.example.com", "*.example.com/team"],
            id="reverse-sort",
        ),
        # same-key-multiple-secrets-secret-order
        pytest.param(
            "same-key", "ghcr.io/org/app:1", ["first:u1", "second:u2", "third:u3"], ["ghcr.io"], id="same-key"
        ),
        # scheme-and-v1-v2-stripping
        pytest.param("v1v2", "registry.local:5000/app", ["a:ua"], ["registry.local:5000"], id="http-scheme"),
        pytest.param("v1v2", "quay.io/org/app", ["c:uc", "b:ub"], ["quay.io/org", "quay.io"], id="v2-org"),
        pytest.param("v1v2", "quay.io/other/app", ["b:ub"], ["quay.io"], id="v2-stripped"),
        pytest.param(
            "v1v2",
            "registry.example.com/v1/app",
            ["d:ud", "e:ue"],
            ["registry.example.com/v1", "registry.example.com"],
            id="v1-without-slash-kept",
        ),
        pytest.param(
            "v1v2", "registry.example.com/app", ["e:ue"], ["registry.example.com"], id="trailing-slash"
        ),
        # case-sensitive-host
        pytest.param("upper", "registry.example.com/app", [], [], id="case-lower"),
        pytest.param(
            "upper", "Registry.Example.com/app", ["upper:uu"], ["Registry.Example.com"], id="case-same"
        ),
        # cloud-globs
        pytest.param(
            "cloud",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1",
            ["ecr:AWS"],
            ["*.dkr.ecr.*.amazonaws.com"],
            id="ecr",
        ),
        pytest.param("cloud", "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app", [], [], id="ecr-fips"),
        pytest.param("cloud", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app", [], [], id="ecr-cn"),
        pytest.param("cloud", "us-docker.pkg.dev/p/r/i", ["gar:_json_key"], ["*.pkg.dev"], id="gar"),
        pytest.param(
            "cloud", "europe-west1-docker.pkg.dev/p/r/i", ["gar:_json_key"], ["*.pkg.dev"], id="gar-eu"
        ),
        pytest.param("cloud", "gcr.io/p/i", [], [], id="gcr-bare"),
        pytest.param("cloud", "eu.gcr.io/p/i", ["gcrwild:_token"], ["*.gcr.io"], id="gcr-eu"),
        # dockerhub-org-prefix-leak
        pytest.param("org", "myorg/app", ["org:uorg"], ["docker.io/myorg"], id="org"),
        pytest.param("org", "myorgx/app", ["org:uorg"], ["docker.io/myorg"], id="org-prefix-leak"),
        pytest.param("org", "otherorg/app", [], [], id="org-other"),
        pytest.param("org", "nginx", [], [], id="org-library"),
        # tag-and-digest-ignored-for-lookup
        pytest.param(
            "tagged", "registry.example.com/app:1.0", ["r:u"], ["registry.example.com/app"], id="tag"
        ),
        pytest.param(
            "tagged",
            f"registry.example.com/app@{_DIGEST}",
            ["r:u"],
            ["registry.example.com/app"],
            id="digest",
        ),
        pytest.param(
            "tagged",
            f"registry.example.com/app:1.0@{_DIGEST}",
            ["r:u"],
            ["registry.example.com/app"],
            id="tag-and-digest",
        ),
    ],
)
def test_domain_facts_scenarios(
    secrets: str, image: str, want_creds: list[str], want_keys: list[str]
) -> None:
    matches = _keyring(_EXTRA[secrets]).lookup(parse_normalized_named(image).name)
    assert [f"{s}:{u}" for s, u in (m.value for m in matches)] == want_creds
    assert _matched_keys(matches) == want_keys


def test_one_malformed_secret_breaks_the_whole_keyring() -> None:
    secrets = [
        _secret("bad", "other.example.com", "", auth="bad!"),
        _secret("good", "registry.example.com", "u"),
    ]
    with pytest.raises(SecretMalformedError) as caught:
        _keyring(secrets)
    assert caught.value.upstream == "illegal base64 data at input byte 3"
    assert caught.value.secret == "pod-ns/bad"


# --- key normalisation (BasicDockerKeyring.Add + Go net/url.Parse) --------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param("https://index.docker.io/v1/", "index.docker.io", id="docker-login"),
        pytest.param("https://index.docker.io/v2/", "index.docker.io", id="v2"),
        pytest.param("index.docker.io", "index.docker.io", id="bare"),
        pytest.param("http://registry.local:5000", "registry.local:5000", id="http"),
        pytest.param("https://quay.io/v2/", "quay.io", id="quay-v2"),
        pytest.param("https://quay.io/v2/org", "quay.io/org", id="quay-v2-org"),
        pytest.param("registry.example.com/v1", "registry.example.com/v1", id="v1-no-slash"),
        pytest.param("registry.example.com/", "registry.example.com", id="slash"),
        pytest.param("https://*.docker.io/v1/", "*.docker.io", id="glob"),
        pytest.param("registry-?.example.com", "registry-", id="question-mark-starts-query"),
        pytest.param("[ab].example.com", None, id="bracket-is-parse-error"),
        pytest.param("[::1]:5000", "[::1]:5000", id="ipv6-literal"),
        pytest.param("[1.2.3.4]:5000", None, id="ipv4-in-brackets"),
        pytest.param("a[b].example.com", None, id="bracket-inside-host"),
        pytest.param("reg.io#frag", "reg.io", id="fragment-dropped"),
        pytest.param("reg.io#%zz", None, id="bad-fragment-escape"),
        pytest.param("user:pw@reg.io/team", "reg.io/team", id="userinfo-dropped"),
        pytest.param("us er@reg.io", None, id="bad-userinfo"),
        pytest.param("reg.io/a%20b", "reg.io/a b", id="path-unescaped"),
        pytest.param("reg.io/100%", None, id="bad-path-escape"),
        pytest.param("r%C3%A9g.io", "r\u00e9g.io", id="host-escape-non-ascii"),
        pytest.param("r%41g.io", None, id="host-escape-ascii-refused"),
        pytest.param("reg io", None, id="space-in-host"),
        pytest.param("reg.io:abc", None, id="port-not-numeric"),
        pytest.param("reg.io:", "reg.io:", id="empty-port"),
        pytest.param("reg.io\n", None, id="control-character"),
        pytest.param("HTTPS://reg.io", "HTTPS://reg.io", id="scheme-prefix-is-case-sensitive"),
        pytest.param("https://reg.io/v2", "reg.io/v2", id="v2-without-slash-kept"),
        pytest.param("", "", id="empty"),
    ],
)
def test_keys_normalise_like_basic_docker_keyring_add(raw: str, key: str | None) -> None:
    assert normalize_key(raw) == key


def test_url_errors_carry_go_text() -> None:
    with pytest.raises(ValueError, match=r'^parse "https://foobar  ": invalid character " " in host name$'):
        url_host_and_path("https://foobar  ")


# --- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [
        # From Go's path/filepath match_test.go; a pattern error is "no match" for kubelet.
        ("abc", "abc", True),
        ("*", "abc", True),
        ("*c", "abc", True),
        ("a*", "a", True),
        ("a*", "abc", True),
        ("a*", "ab/c", False),
        ("a*/b", "abc/b", True),
        ("a*/b", "a/c/b", False),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
        ("a*b?c*x", "abxbbxdbxebxczzx", True),
        ("a*b?c*x", "abxbbxdbxebxczzy", False),
        ("ab[c]", "abc", True),
        ("ab[b-d]", "abc", True),
        ("ab[e-g]", "abc", False),
        ("ab[^c]", "abc", False),
        ("ab[^b-d]", "abc", False),
        ("ab[^e-g]", "abc", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "ab", False),
        ("a?b", "a\u263ab", True),
        ("a[^a]b", "a\u263ab", True),
        ("a???b", "a\u263ab", False),
        ("a[^a][^a][^a]b", "a\u263ab", False),
        ("[a-\u03b6]*", "\u03b1", True),
        ("*[a-\u03b6]", "A", False),
        ("a?b", "a/b", False),
        ("a*b", "a/b", False),
        ("[\\]a]", "]", True),
        ("[\\-]", "-", True),
        ("[x\\-]", "x", True),
        ("[x\\-]", "-", True),
        ("[x\\-]", "z", False),
        ("[\\-x]", "x", True),
        ("[\\-x]", "-", True),
        ("[\\-x]", "a", False),
        ("[]a]", "]", False),
        ("[-]", "-", False),
        ("[x-]", "x", False),
        ("[x-]", "-", False),
        ("[x-]", "z", False),
        ("[-x]", "x", False),
        ("[-x]", "-", False),
        ("[-x]", "a", False),
        ("\\", "a", False),
        ("[a-b-c]", "a", False),
        ("[", "a", False),
        ("[^", "a", False),
        ("[^bc", "a", False),
        ("a[", "a", False),
        ("a[", "ab", False),
        ("a[", "x", False),
        ("a/b[", "x", False),
        ("*x", "xxx", True),
    ],
)
def test_labels_glob_like_go_filepath_match(pattern: str, name: str, matched: bool) -> None:
    assert _go_match(pattern.encode(), name.encode()) is matched


@pytest.mark.parametrize(
    ("glob", "target", "matched"),
    [
        pytest.param("[::1]:5000", "[::1]:5000/foo", True, id="ipv6-with-port"),
        pytest.param("[::1]", "[::1]/foo", False, id="ipv6-without-port-is-a-char-class"),
        pytest.param("*", "", True, id="star-matches-the-one-empty-label"),
        pytest.param("reg.io/a", "reg.io/a?b", True, id="query-ignored"),
        pytest.param("reg.io]", "reg.io]/x", True, id="closing-bracket-allowed"),
    ],
)
def test_urls_match_edge_cases(glob: str, target: str, matched: bool) -> None:
    assert urls_match(glob, target) is matched


def test_index_is_deduplicated_and_reverse_byte_ordered() -> None:
    keyring: Keyring[int] = Keyring()
    for i, key in enumerate(["b.io", "https://a.io", "*.io", "a.io/v2/", "http://b.io", "[bad"]):
        keyring.add(key, i)
    assert keyring.index == ["b.io", "a.io", "*.io"]
    assert [m.value for m in keyring.lookup("b.io/x")] == [0, 4, 2]


def test_add_reports_the_normalised_key_or_none() -> None:
    keyring: Keyring[str] = Keyring()
    assert keyring.add("https://index.docker.io/v1/", "x") == "index.docker.io"
    assert keyring.add("[ab].example.com", "y") is None
    assert keyring.index == ["index.docker.io"]


def test_docker_hub_fallback_only_when_nothing_matched() -> None:
    keyring: Keyring[str] = Keyring()
    keyring.add("https://index.docker.io/v1/", "hub")
    assert keyring.lookup("docker.io/library/nginx") == [KeyringMatch("index.docker.io", "hub", True)]
    assert keyring.lookup("quay.io/x") == []
    keyring.add("*.io", "wild")
    assert keyring.lookup("docker.io/library/nginx") == [KeyringMatch("*.io", "wild", False)]


@given(st.text(), st.text())
def test_urls_match_never_raises(glob: str, target: str) -> None:
    assert urls_match(glob, target) in (True, False)


def _go_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


_HOSTISH = st.text(alphabet="ab.*:[]/?#%@0-9\\^é", max_size=16)


@given(st.lists(_HOSTISH | st.text(max_size=12), max_size=6), _HOSTISH | st.text(max_size=12))
@example(["%90", "\x80"], "")  # an escaped byte sorts as the byte itself, as in Go
def test_keyring_never_raises_and_keeps_go_order(keys: list[str], repo: str) -> None:
    keyring: Keyring[int] = Keyring()
    for i, key in enumerate(keys):
        keyring.add(key, i)
    # Go's bytes: an escaped byte (%90) is kept as itself (surrogateescape), as keyring._enc does.
    raw = [_go_bytes(k) for k in keyring.index]
    assert raw == sorted(set(raw), reverse=True)
    for match in keyring.lookup(repo):
        assert match.key in keyring.index or match.fallback
