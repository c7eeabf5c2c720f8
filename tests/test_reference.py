"""Image references parse exactly as distribution/reference v0.6.0, kubelet and containerd parse them.

The vectors are in ``tests/data/conformance/references.json``, a copy of the shared conformance
folder. Every table that means something for ``webhook.core.reference`` is used:

- ``computed``: Parse, ParseNormalizedNamed, ParseAnyReference and the derived kubelet and
  containerd views, for every row.
- ``kubelet_ParseImageName``.
- Every ``upstream_tables`` entry except the ones listed below. The Go-API tables are used
  through their parsing rules:
  - TestSerialization: ``Field.UnmarshalText`` is ``Parse``.
  - TestWithNameFailure and TestDomainAndPath: ``WithName`` is ``NAME_RE`` plus the 255 limit.
  - TestWithTag: ``WithTag`` checks ``TAG_RE``.
  - TestWithDigest: ``WithDigest`` checks ``DIGEST_RE`` syntax only, never go-digest.

Not used, and why:

- normalize_test.go TestMatch: it tests ``FamiliarMatch``, which is ``path.Match`` globbing over
  familiar strings. pullguard never globs image references.
- normalize_test.go TestParseRepositoryInfo ``refStrings``: these are not cases. They are the Go
  test's loop list (``tc.FamiliarName``, ``tc.FullName``, and ``tc.AmbiguousName`` when set), and
  test_repository_info_is_the_same_from_every_spelling applies them.

Go error identifiers (``ERR:ErrNameEmpty``, ...) are mapped to their messages by ``GO_ERRORS``.
That map is checked against the ``notes`` of the vectors file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from webhook.core.errors import InvalidReferenceError
from webhook.core.reference import (
    DIGEST_RE,
    DOMAIN_RE,
    IDENTIFIER_RE,
    NAME_RE,
    NAME_TOTAL_LENGTH_MAX,
    REFERENCE_RE,
    TAG_RE,
    ImageReference,
    ParsedReference,
    kubelet_parse_image_name,
    parse,
    parse_any_reference,
    parse_docker_ref,
    parse_named,
    parse_normalized_named,
)

VECTORS_FILE = Path(__file__).parent / "data" / "conformance" / "references.json"


def _load_vectors() -> dict[str, Any]:
    if not VECTORS_FILE.is_file():
        raise FileNotFoundError(
            f"conformance vectors missing: {VECTORS_FILE}; copy conformance/references.json "
            "from the shared folder into tests/data/conformance/"
        )
    vectors: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    return vectors


VECTORS = _load_vectors()

GO_ERRORS = {
    "ErrNameEmpty": "repository name must have at least one component",
    "ErrReferenceInvalidFormat": "invalid reference format",
    "ErrNameContainsUppercase": "repository name must be lowercase",
    "ErrNameTooLong": "repository name must not be more than 255 characters",
    "ErrNameNotCanonical": "repository name must be canonical",
    "ErrTagInvalidFormat": "invalid tag format",
    "digest.ErrDigestInvalidLength": "invalid checksum digest length",
    "digest.ErrDigestUnsupported": "unsupported digest algorithm",
}
FORMAT, UPPERCASE, EMPTY, TOO_LONG = (
    GO_ERRORS["ErrReferenceInvalidFormat"],
    GO_ERRORS["ErrNameContainsUppercase"],
    GO_ERRORS["ErrNameEmpty"],
    GO_ERRORS["ErrNameTooLong"],
)
DIGEST_ERRORS = {
    "invalid checksum digest format",
    "invalid checksum digest length",
    "unsupported digest algorithm",
}
HEX64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _table(test: str, var: str = "tests") -> list[Any]:
    for table in VECTORS["upstream_tables"]:
        if table["test"] == test and table["var"] == var:
            rows: list[Any] = table["rows"]
            return rows
    raise LookupError(f"{VECTORS_FILE.name} has no upstream table {test}/{var}")


def _go_error(identifier: str) -> str:
    return GO_ERRORS[identifier.removeprefix("ERR:")]


def _id(text: str) -> str:
    if not text:
        return "<empty>"
    return text if len(text) <= 48 else f"{text[:36]}...len{len(text)}"


def _fields(ref: ImageReference | ParsedReference) -> dict[str, str]:
    """The fields as the vectors spell them: empty domain, tag and digest are left out."""
    fields = {"string": str(ref), "name": ref.name, "domain": ref.domain, "path": ref.path}
    fields |= {"tag": ref.tag or "", "digest": ref.digest or ""}
    return {key: value for key, value in fields.items() if value}


def _upstream_error(call: Any, text: str) -> str:
    with pytest.raises(InvalidReferenceError) as caught:
        call(text)
    assert caught.value.reference == text
    assert caught.value.reason
    upstream: str = caught.value.upstream
    return upstream


def _with_name(name: str) -> tuple[str, str]:
    """Go ``WithName``: ``anchoredNameRegexp``, then the 255 limit on the path."""
    match = NAME_RE.match(name)
    if match is None:
        raise ValueError(FORMAT)
    if len(match.group(2)) > NAME_TOTAL_LENGTH_MAX:
        raise ValueError(TOO_LONG)
    return match.group(1) or "", match.group(2)


# ---- the vectors file itself -------------------------------------------------------------------


def test_the_error_map_is_the_one_the_vectors_notes_give() -> None:
    notes = " ".join(VECTORS["notes"])
    for identifier, message in GO_ERRORS.items():
        assert f"{identifier}='{message}'" in notes


# ---- computed: the real library run on every input ---------------------------------------------

COMPUTED = VECTORS["computed"]


def _computed(kind: str) -> list[Any]:
    return [pytest.param(row["input"], row[kind], id=_id(row["input"])) for row in COMPUTED]


@pytest.mark.parametrize(("text", "expected"), _computed("Parse"))
def test_parse_agrees_with_the_go_library(text: str, expected: dict[str, Any]) -> None:
    if not expected["ok"]:
        assert _upstream_error(parse, text) == expected["error"]
        return
    assert _fields(parse(text)) == {key: value for key, value in expected.items() if key != "ok"}


@pytest.mark.parametrize(("text", "expected"), _computed("ParseNormalizedNamed"))
def test_parse_normalized_named_agrees_with_the_go_library(text: str, expected: dict[str, Any]) -> None:
    if not expected["ok"]:
        assert _upstream_error(parse_normalized_named, text) == expected["error"]
        assert _upstream_error(parse_docker_ref, text) == expected["error"]
        return
    ref = parse_normalized_named(text)
    got = _fields(ref) | {
        "familiar_name": ref.familiar_name,
        "familiar_string": ref.familiar_string,
        "docker_ref": ref.pull_reference,
    }
    assert got == {key: value for key, value in expected.items() if key != "ok"}
    assert parse_docker_ref(text) == expected["docker_ref"]


@pytest.mark.parametrize(("text", "expected"), _computed("ParseAnyReference"))
def test_parse_any_reference_agrees_with_the_go_library(text: str, expected: dict[str, Any]) -> None:
    if not expected["ok"]:
        assert _upstream_error(parse_any_reference, text) == expected["error"]
        return
    assert parse_any_reference(text) == expected["string"]
    if "name" in expected:  # a named reference: the same fields as ParseNormalizedNamed
        fields = {key: value for key, value in expected.items() if key != "ok"}
        assert _fields(parse_normalized_named(text)) == fields
    else:  # a bare digest or identifier
        assert expected["digest"] == expected["string"]


@pytest.mark.parametrize(
    ("text", "derived"),
    [
        pytest.param(row["input"], row["derived"], id=_id(row["input"]))
        for row in COMPUTED
        if "derived" in row
    ],
)
def test_derived_views_are_what_kubelet_and_containerd_use(text: str, derived: dict[str, str]) -> None:
    ref = parse_normalized_named(text)
    repo, tag, digest = (
        derived["kubelet_repoToPull_for_keyring_lookup"],
        derived["kubelet_tag"],
        derived["kubelet_digest"],
    )
    assert kubelet_parse_image_name(text) == (repo, tag, digest)
    assert ref.name == repo
    assert ref.default_pull_policy == derived["default_imagePullPolicy"]
    assert ref.pull_reference == derived["containerd_ParseDockerRef"]
    assert f"/v2/{ref.path}/manifests/{ref.manifest_reference}" == derived["manifest_path"]
    # hosts.go maps docker.io to registry-1.docker.io. That mapping belongs to the resolver;
    # here it shows is_docker_hub is the predicate it needs.
    contacted = "registry-1.docker.io" if ref.is_docker_hub else ref.domain
    assert contacted == derived["registry_host_contacted_by_containerd_default"]


def test_every_computed_row_is_used() -> None:
    assert len(COMPUTED) >= 170
    assert all({"Parse", "ParseNormalizedNamed", "ParseAnyReference"} <= row.keys() for row in COMPUTED)


# ---- kubelet pkg/util/parsers TestParseImageName -----------------------------------------------


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=_id(row["input"])) for row in VECTORS["kubelet_ParseImageName"]]
)
def test_kubelet_parse_image_name(row: dict[str, str]) -> None:
    if "error_contains" in row:
        assert row["error_contains"] in _upstream_error(kubelet_parse_image_name, row["input"])
        return
    assert kubelet_parse_image_name(row["input"]) == (row["repo"], row["tag"], row["digest"])


# ---- reference_test.go -------------------------------------------------------------------------


def _reference_parse_cases() -> list[Any]:
    cases = []
    for row in _table("TestReferenceParse"):
        text, error, expected = row["input"], row.get("err"), row
        if error == "ERR:digest.ErrDigestUnsupported" and "@sha512:" in text:
            # notes: upstream's test binary registers only sha256. kubelet and containerd
            # import crypto/sha512 as well, so these rows parse.
            name, _, digest = text.partition("@")
            expected, error = {"input": text, "repository": name, "digest": digest}, None
        cases.append(pytest.param(expected, error and _go_error(error), id=_id(text)))
    return cases


@pytest.mark.parametrize(("row", "error"), _reference_parse_cases())
def test_reference_parse(row: dict[str, str], error: str | None) -> None:
    if error:
        assert _upstream_error(parse, row["input"]) == error
        return
    ref = parse(row["input"])
    assert (ref.name, ref.domain) == (row["repository"], row.get("domain", ""))
    assert (ref.tag, ref.digest) == (row.get("tag"), row.get("digest"))


@pytest.mark.parametrize("row", [pytest.param(row, id=_id(row["input"])) for row in _table("TestParseNamed")])
def test_parse_named_requires_the_canonical_form(row: dict[str, str]) -> None:
    if "err" in row:
        assert _upstream_error(parse_named, row["input"]) == _go_error(row["err"])
        return
    ref = parse_named(row["input"])
    assert (ref.domain, ref.path) == (row["domain"], row["path"])


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=_id(row["input"])) for row in _table("TestWithNameFailure")]
)
def test_with_name_failures_are_not_names(row: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=f"^{_go_error(row['err'])}$"):
        _with_name(row["input"])


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=_id(row["input"])) for row in _table("TestDomainAndPath")]
)
def test_domain_and_path_of_a_bare_name(row: dict[str, str]) -> None:
    assert _with_name(row["input"]) == (row["domain"], row["path"])
    parsed = parse(row["input"])
    assert (parsed.domain, parsed.path) == (row["domain"], row["path"])


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=row["description"]) for row in _table("TestSerialization")]
)
def test_serialization_parses_with_parse(row: dict[str, str]) -> None:
    text = row.get("input", "")
    if "err" in row:
        assert _upstream_error(parse, text) == _go_error(row["err"])
        return
    ref = parse(text)
    assert (ref.name, ref.tag, ref.digest) == (row["name"], row.get("tag"), row.get("digest"))
    assert str(ref) == text


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(row, id=f"{test}-{_id(row['combined'])}")
        for test in ("TestWithTag", "TestWithDigest")
        for row in _table(test)
    ],
)
def test_with_tag_and_with_digest_compose_the_string(row: dict[str, str]) -> None:
    domain, path = _with_name(row["name"])
    tag, digest = row.get("tag"), row.get("digest")
    assert tag is None or TAG_RE.match(tag)
    assert digest is None or DIGEST_RE.match(digest)  # syntax only: 37 hex would fail go-digest
    assert str(ImageReference(domain, path, tag, digest)) == row["combined"]


# ---- normalize_test.go -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        pytest.param(text, valid, id=f"{test}-{var}-{_id(text)}")
        for test, var, valid in (
            ("TestValidateReferenceName", "validRepoNames", True),
            ("TestValidateReferenceName", "invalidRepoNames", False),
            ("TestValidateRemoteName", "validRepositoryNames", True),
            ("TestValidateRemoteName", "invalidRepositoryNames", False),
        )
        for text in _table(test, var)
    ],
)
def test_validity_lists(text: str, valid: bool) -> None:
    if valid:
        assert parse_normalized_named(text)
    else:
        with pytest.raises(InvalidReferenceError):
            parse_normalized_named(text)


def _repository_info_cases() -> list[Any]:
    assert _table("TestParseRepositoryInfo", "refStrings") == ["ERR:tc.FamiliarName", "ERR:tc.FullName"]
    return [
        pytest.param(spelling, row, id=f"{_id(row['FullName'])}-as-{_id(spelling)}")
        for row in _table("TestParseRepositoryInfo")
        for spelling in dict.fromkeys((row["AmbiguousName"], row["FamiliarName"], row["FullName"]))
        if spelling
    ]


@pytest.mark.parametrize(("spelling", "row"), _repository_info_cases())
def test_repository_info_is_the_same_from_every_spelling(spelling: str, row: dict[str, str]) -> None:
    ref = parse_normalized_named(spelling)
    assert (ref.familiar_name, ref.name) == (row["FamiliarName"], row["FullName"])
    assert (ref.domain, ref.path) == (row["Domain"], row["RemoteName"])


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=_id(row["input"])) for row in _table("TestNormalizedSplitHostname")]
)
def test_normalized_split_hostname(row: dict[str, str]) -> None:
    ref = parse_normalized_named(row["input"])
    assert (ref.domain, ref.path) == (row["domain"], row["path"])


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=_id(row["Reference"])) for row in _table("TestParseAnyReference")]
)
def test_parse_any_reference(row: dict[str, str]) -> None:
    assert parse_any_reference(row["Reference"]) == row["Equivalent"]
    if "Expected" in row:
        assert parse_any_reference(row["Reference"]) == row["Expected"]


@pytest.mark.parametrize("row", [pytest.param(row, id=row["name"]) for row in _table("TestParseDockerRef")])
def test_parse_docker_ref(row: dict[str, str]) -> None:
    assert parse_docker_ref(row["input"]) == row["expected"]


# ---- regexp_test.go ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=_id(row["input"])) for row in _table("TestDomainRegexp")]
)
def test_domain_regexp(row: dict[str, Any]) -> None:
    assert bool(DOMAIN_RE.match(row["input"])) is row["match"]


@pytest.mark.parametrize(
    "row", [pytest.param(row, id=_id(row["input"])) for row in _table("TestIdentifierRegexp")]
)
def test_identifier_regexp(row: dict[str, Any]) -> None:
    assert bool(IDENTIFIER_RE.match(row["input"])) is row["match"]


@pytest.mark.parametrize(
    ("pattern", "row"),
    [
        pytest.param(pattern, row, id=f"{test}-{_id(row['input'])}")
        for test, pattern in (("TestFullNameRegexp", NAME_RE), ("TestReferenceRegexp", REFERENCE_RE))
        for row in _table(test)
    ],
)
def test_name_and_reference_regexps_capture_like_go(pattern: Any, row: dict[str, Any]) -> None:
    match = pattern.match(row["input"])
    assert bool(match) is row["match"]
    if match and "subs" in row:
        assert [group or "" for group in match.groups()] == row["subs"]  # Go reports "" for no match
    # the splitting parser sees the same grammar (parse also applies the length and digest checks)
    if pattern is REFERENCE_RE or match:
        allowed = {"ok", TOO_LONG, *DIGEST_ERRORS} if match else {FORMAT, UPPERCASE, EMPTY}
        assert _parse_outcome(row["input"]) in allowed


def _parse_outcome(text: str) -> str:
    try:
        parse(text)
    except InvalidReferenceError as error:
        return error.upstream
    return "ok"


# ---- domain-facts.md V-REF-9 rows that the computed sweep does not carry ----------------------

EXTRA_ROWS = [
    # input, error or (name, domain, path, tag, pull reference, default policy)
    ("library/nginx", ("docker.io/library/nginx", "docker.io", "library/nginx", None, ":latest", "Always")),
    (
        "example.com",
        ("docker.io/library/example.com", "docker.io", "library/example.com", None, ":latest", "Always"),
    ),
    ("example.com/foo", ("example.com/foo", "example.com", "foo", None, ":latest", "Always")),
    (
        "docker.io",
        ("docker.io/library/docker.io", "docker.io", "library/docker.io", None, ":latest", "Always"),
    ),
    (
        "nginx:LATEST",
        ("docker.io/library/nginx", "docker.io", "library/nginx", "LATEST", ":LATEST", "IfNotPresent"),
    ),
    (
        "registry.example.com:443/foo",
        ("registry.example.com:443/foo", "registry.example.com:443", "foo", None, ":latest", "Always"),
    ),
    ("a/b/c/d/e", ("docker.io/a/b/c/d/e", "docker.io", "a/b/c/d/e", None, ":latest", "Always")),
    (
        "registry.example.com/a--b/c",
        ("registry.example.com/a--b/c", "registry.example.com", "a--b/c", None, ":latest", "Always"),
    ),
    ("nginx:.tag", FORMAT),
    ("nginx:", FORMAT),
    ("nginx@sha256:abc", FORMAT),
    ("foo//bar", FORMAT),
    ("foo/bar/", FORMAT),
    (" nginx", FORMAT),
    (
        f"nginx@SHA256:{HEX64}",
        "invalid reference format: repository name (library/nginx@SHA256) must be lowercase",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(*row, id=_id(row[0])) for row in EXTRA_ROWS])
def test_domain_facts_rows(text: str, expected: str | tuple[str, str, str, str | None, str, str]) -> None:
    if isinstance(expected, str):
        assert _upstream_error(parse_normalized_named, text) == expected
        return
    name, domain, path, tag, pull_suffix, policy = expected
    ref = parse_normalized_named(text)
    assert (ref.name, ref.domain, ref.path, ref.tag) == (name, domain, path, tag)
    assert (ref.pull_reference, ref.default_pull_policy) == (name + pull_suffix, policy)


# ---- behaviour the vectors do not pin ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "upstream", "fragments"),
    [
        pytest.param(
            "UPPER",
            "invalid reference format: repository name (library/UPPER) must be lowercase",
            ["'library/UPPER'", "upper-case", "registry host"],
            id="uppercase-path",
        ),
        pytest.param("nginx:", FORMAT, ["tag is empty after ':'"], id="empty-tag"),
        pytest.param("nginx@", FORMAT, ["digest is empty after '@'"], id="empty-digest"),
        pytest.param(
            "nginx@sha256:abc",
            FORMAT,
            ["'sha256:abc' has 3 hex characters; sha256 needs 64"],
            id="short-digest",
        ),
        pytest.param(
            f"nginx@sha256:{HEX64[:40]}",
            "invalid checksum digest length",
            ["has 40 hex characters; sha256 needs 64"],
            id="digest-length",
        ),
        pytest.param(
            f"nginx@sha512:{HEX64}",
            "invalid checksum digest length",
            ["has 64 hex characters; sha512 needs 128"],
            id="sha512-length",
        ),
        pytest.param(
            f"nginx@md5:{HEX64[:32]}",
            "unsupported digest algorithm",
            ["'md5' is not supported"],
            id="unsupported-algorithm",
        ),
        pytest.param(
            f"nginx:1@SHA256:{HEX64}",
            "invalid checksum digest format",
            ["'SHA256' must be lower case"],
            id="uppercase-algorithm-after-tag",
        ),
        pytest.param(
            f"nginx@SHA256:{HEX64}",
            "invalid reference format: repository name (library/nginx@SHA256) must be lowercase",
            ["digest algorithm 'SHA256' must be lower case"],
            id="uppercase-algorithm",
        ),
        pytest.param(
            f"nginx@sha256:{HEX64.upper()}",
            "invalid checksum digest format",
            ["lower-case hexadecimal"],
            id="uppercase-hex",
        ),
        pytest.param(
            "example.com/" + "a" * 268,
            TOO_LONG,
            ["the repository path is 268 characters; at most 255 are allowed"],
            id="too-long",
        ),
        pytest.param("nginx:" + "a" * 129, FORMAT, ["tag is 129 characters; at most 128"], id="tag-too-long"),
        pytest.param(
            "http://nginx",
            FORMAT,
            ["scheme 'http://' is not part of an image reference; drop it"],
            id="scheme",
        ),
        pytest.param(" nginx", FORMAT, ["leading or trailing whitespace"], id="leading-space"),
        pytest.param("nginx\n", FORMAT, ["leading or trailing whitespace"], id="trailing-newline"),
        pytest.param(
            "nginx:-tag",
            FORMAT,
            ["the tag starts with '-'; a tag must start with a letter, digit or '_'"],
            id="tag-start",
        ),
        pytest.param("nginx:a~b", FORMAT, ["contains '~'"], id="tag-character"),
        pytest.param(
            "registry.example.com/-a/b",
            FORMAT,
            ["the component '-a' starts with a separator"],
            id="component-start",
        ),
        pytest.param(
            "docker-/docker", FORMAT, ["the component 'docker-' ends with a separator"], id="component-end"
        ),
        pytest.param("registry.example.com/a___b/c", FORMAT, ["'___'"], id="separator-run"),
        pytest.param("foo//bar", FORMAT, ["empty component"], id="double-slash"),
        pytest.param("foo/bar/", FORMAT, ["ends with '/'"], id="trailing-slash"),
        pytest.param("docker.io/", FORMAT, ["repository path is empty"], id="no-path"),
        pytest.param("aa/asdf$$^/aa", FORMAT, ["'asdf$$^' contains '$'"], id="path-character"),
        pytest.param(
            "my_registry:5000/foo", FORMAT, ["'my_registry:5000' contains '_'"], id="host-underscore"
        ),
        pytest.param("example.com:http/foo", FORMAT, ["port 'http'", "not a number"], id="port-not-number"),
        pytest.param(
            "-docker.io/docker/docker", FORMAT, ["label '-docker' starts with '-'"], id="label-start"
        ),
        pytest.param("fc00::1:5000/debian", FORMAT, ["in brackets"], id="ipv6-without-brackets"),
        pytest.param("[fe80::1%eth0]:5000/debian", FORMAT, ["zone identifier"], id="ipv6-zone"),
        pytest.param("[2001:db8:3:4::192.0.2.33]:5000/debian", FORMAT, ["IPv4"], id="ipv6-embedded-ipv4"),
        pytest.param("[fc00::1]:5000", FORMAT, ["no repository after it"], id="host-only"),
        pytest.param(":justtag", FORMAT, ["repository name is missing"], id="no-name"),
        pytest.param(
            HEX64,
            f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings",
            ["image ID"],
            id="bare-identifier",
        ),
        pytest.param("", FORMAT, ["empty"], id="empty"),
    ],
)
def test_reasons_name_the_problem(text: str, upstream: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_normalized_named(text)
    error = caught.value
    assert error.upstream == upstream
    for fragment in fragments:
        assert fragment in error.reason
    assert str(error).startswith("invalid image reference ")
    assert error.reason in str(error)


def test_parse_named_reason_shows_the_canonical_form() -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_named("nginx")
    assert caught.value.upstream == GO_ERRORS["ErrNameNotCanonical"]
    assert "'docker.io/library/nginx'" in caught.value.reason


def test_parse_reports_an_empty_reference_as_empty() -> None:
    assert _upstream_error(parse, "") == EMPTY


def test_parse_reports_uppercase_in_the_path() -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse("test:5000/Uppercase/lowercase:tag")
    assert caught.value.upstream == UPPERCASE
    assert "'Uppercase/lowercase'" in caught.value.reason


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        pytest.param("nginx", "docker.io", None, id="hub"),
        pytest.param("localhost/foo", "localhost", None, id="localhost"),
        pytest.param("127.0.0.1:5000/foo", "127.0.0.1", 5000, id="ipv4-port"),
        pytest.param("[::1]/foo", "::1", None, id="ipv6"),
        pytest.param("[2001:db8::1]:5000/repo", "2001:db8::1", 5000, id="ipv6-port"),
        pytest.param("Foo:8080/bar", "Foo", 8080, id="uppercase-host"),
    ],
)
def test_host_and_port(text: str, host: str, port: int | None) -> None:
    ref = parse_normalized_named(text)
    assert (ref.host, ref.port) == (host, port)


def test_sha384_is_registered_with_sha512() -> None:
    # crypto/sha512's init registers SHA384 as well, so go-digest accepts it wherever sha512 works.
    digest = "sha384:" + "a" * 96
    assert parse_normalized_named(f"nginx@{digest}").digest == digest
    assert parse_any_reference(digest) == digest


def test_a_host_with_an_underscore_leaves_the_name_without_a_domain() -> None:
    # splitDockerDomain takes "foo_bar.com" as a domain (it has a '.'), but Parse cannot read it
    # as one, so the whole name becomes a path. Go returns Domain()=="" and Name()=="foo_bar.com/x".
    ref = parse_normalized_named("foo_bar.com/x:1")
    assert (ref.domain, ref.path, ref.name, str(ref)) == (
        "",
        "foo_bar.com/x",
        "foo_bar.com/x",
        "foo_bar.com/x:1",
    )
    assert (ref.pull_reference, ref.familiar_name, ref.is_docker_hub) == (
        "foo_bar.com/x:1",
        "foo_bar.com/x",
        False,
    )
    assert parse_named("foo_bar.com/x:1") == ref


def test_go_lowercases_dotted_capital_i_to_ascii() -> None:
    # strings.ToLower maps U+0130 to 'i' (Python's str.lower gives 'i' + U+0307), so Go's Parse
    # sees a valid name after lower-casing and reports upper case rather than a bad format.
    assert _upstream_error(parse, "\u0130mage") == UPPERCASE
    assert _upstream_error(parse, "\u212aelvin") == UPPERCASE  # KELVIN SIGN lower-cases to 'k'


# ---- properties --------------------------------------------------------------------------------

_REFERENCE_ALPHABET = "abz09AZ._-:/@[]%\u0130 "
_PIECES = st.sampled_from(
    ["a", "0", "A", ".", "_", "__", "-", ":", "/", "@", "[", "]", "%", " ", "\u0130", "\u212a", "localhost"]
    + [
        "docker.io",
        "index.docker.io",
        "example.com",
        ":5000",
        "[::1]",
        "[fd00:1::2]:99",
        "library/",
        "latest",
    ]
    + [f"{algorithm}:{'a' * size}" for algorithm, size in [("sha256", 64), ("sha384", 96), ("sha512", 128)]]
    + [f"sha256:{'c' * 40}", f"SHA256:{'d' * 64}", f"md5:{'f' * 32}", f"sha256:{'E' * 64}"]
)
_REFERENCE_LIKE = st.lists(_PIECES, max_size=8).map("".join)


@given(st.one_of(st.text(), st.text(alphabet=_REFERENCE_ALPHABET, max_size=40), _REFERENCE_LIKE))
def test_any_text_parses_or_raises_invalid_reference_only(text: str) -> None:
    for call in (parse_normalized_named, parse, parse_any_reference, parse_named, parse_docker_ref):
        try:
            call(text)
        except InvalidReferenceError as error:
            assert error.upstream
            assert error.reason
    try:
        ref = parse_normalized_named(text)
    except InvalidReferenceError:
        return
    assert parse_normalized_named(str(ref)) == ref
    assert parse_named(str(ref)) == ref
    pulled = parse_normalized_named(ref.pull_reference)
    assert (pulled.name, pulled.digest) == (ref.name, ref.digest)
    assert pulled.tag == (None if ref.digest else ref.tag or "latest")


@given(st.one_of(_REFERENCE_LIKE, st.text(alphabet=_REFERENCE_ALPHABET, max_size=40), st.text(max_size=12)))
def test_splitting_parser_agrees_with_the_whole_grammar_regexp(text: str) -> None:
    match = REFERENCE_RE.match(text)
    try:
        got = parse(text)
    except InvalidReferenceError as error:
        if match:
            assert error.upstream in DIGEST_ERRORS | {TOO_LONG}
        elif not text:
            assert error.upstream == EMPTY
        else:
            lowered = text.replace("\u0130", "i").lower()
            assert error.upstream == (UPPERCASE if REFERENCE_RE.match(lowered) else FORMAT)
        return
    assert match
    name, tag, digest = match.groups()
    name_match = NAME_RE.match(name)
    assert name_match
    domain, path = name_match.group(1) or "", name_match.group(2)
    assert (got.name, got.domain, got.path, got.tag, got.digest) == (name, domain, path, tag, digest)


_ALNUM = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_COMPONENT = st.builds(
    lambda first, rest: first + "".join(separator + alnum for separator, alnum in rest),
    _ALNUM,
    st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "--", "---"]), _ALNUM), max_size=3),
)
_LABEL = st.from_regex(r"\A[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?\Z")
_HOSTNAME = st.lists(_LABEL, min_size=2, max_size=4).map(".".join)
# splitDockerDomain needs a ':' to see a bracketed host as a domain ("[0]/x" is a Hub path, and invalid)
_IPV6 = st.from_regex(r"\A\[[a-fA-F0-9]{0,4}:[a-fA-F0-9:]{0,12}\]\Z")
_DOMAIN = st.one_of(
    _HOSTNAME,
    _IPV6,
    st.just("localhost"),
    st.tuples(st.one_of(_HOSTNAME, _LABEL, _IPV6, st.just("localhost")), st.integers(0, 99999)).map(
        lambda host_port: f"{host_port[0]}:{host_port[1]}"
    ),
)
_TAG = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}\Z")
_DIGEST = st.sampled_from([("sha256", 64), ("sha384", 96), ("sha512", 128)]).flatmap(
    lambda algorithm: st.text(alphabet="0123456789abcdef", min_size=algorithm[1], max_size=algorithm[1]).map(
        lambda hex_part: f"{algorithm[0]}:{hex_part}"
    )
)


@given(
    st.none() | _DOMAIN,
    st.lists(_COMPONENT, min_size=1, max_size=4),
    st.none() | _TAG,
    st.none() | _DIGEST,
)
def test_references_built_from_the_grammar_round_trip(
    domain: str | None, components: list[str], tag: str | None, digest: str | None
) -> None:
    path = "/".join(components)
    if domain is None:
        # a first component with a '.' (or "localhost") would be read as a domain, by design
        assume(len(components) == 1 or ("." not in components[0] and components[0] != "localhost"))
    text = (
        (f"{domain}/" if domain else "")
        + path
        + (f":{tag}" if tag else "")
        + (f"@{digest}" if digest else "")
    )
    ref = parse_normalized_named(text)
    expected_domain = "docker.io" if domain in (None, "index.docker.io") else domain
    expected_path = f"library/{path}" if expected_domain == "docker.io" and "/" not in path else path
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (expected_domain, expected_path, tag, digest)
    assert parse_normalized_named(str(ref)) == ref
    assert parse_named(str(ref)) == ref
    assert parse_docker_ref(text) == ref.pull_reference
    assert ref.pull_reference == (f"{ref.name}@{digest}" if digest else f"{ref.name}:{tag or 'latest'}")
    if not ref.is_docker_hub:  # Hub familiar strings can read back as a host ("docker.io/a.b/c" -> "a.b/c")
        assert ref.familiar_string == str(ref)
    assert ref.default_pull_policy == ("Always" if tag == "latest" or not (tag or digest) else "IfNotPresent")
