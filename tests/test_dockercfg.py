"""kubelet's docker config decoding: conformance rows from keyring.json plus Go encoding/json and
encoding/base64 behaviours the rows do not pin down."""

from __future__ import annotations

import base64
import json
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.core.dockercfg import (
    AuthEntry,
    DockerCfgError,
    decode_auth_field,
    entries_from_secret,
    parse_docker_config_json,
    parse_dockercfg,
)
from webhook.core.errors import SecretMalformedError
from webhook.core.keyring import Keyring
from webhook.core.redact import Secret

DATA = Path(__file__).parent / "data" / "conformance" / "keyring.json"
if not DATA.is_file():
    pytest.fail(f"conformance vectors missing: {DATA} (copy ../shared/conformance into tests/data)")
VECTORS: dict[str, Any] = json.loads(DATA.read_text())

JSON_TYPE = "kubernetes.io/dockerconfigjson"
CFG_TYPE = "kubernetes.io/dockercfg"


def _creds(entries: list[AuthEntry]) -> list[tuple[str, str, str]]:
    return [(e.username, e.password.reveal(), e.email) for e in entries]


def _raises(error: str | None) -> AbstractContextManager[Any]:
    return pytest.raises(DockerCfgError, match=error) if error else nullcontext()


# --- conformance: config_decode -------------------------------------------------------------


def _config_rows() -> list[Any]:
    return [pytest.param(row, id=f"{i}-{row['test']}") for i, row in enumerate(VECTORS["config_decode"])]


@pytest.mark.parametrize("row", _config_rows())
def test_config_decode_rows_agree_with_kubelet(row: dict[str, Any]) -> None:
    kind = row["test"]
    if kind == "TestDockerConfigEntryJSONDecode":
        # The row is one entry; wrap it the way a .dockercfg document holds entries.
        document = '{"reg": ' + row["input"] + "}"
        if row["fail"]:
            with pytest.raises(DockerCfgError):
                parse_dockercfg(document)
            return
        (entry,) = parse_dockercfg(document)
        want = row["expect"]
        assert _creds([entry]) == [(want["username"], want["password"], want["email"])]
    elif kind == "TestDockerConfigJsonJSONDecode":
        entries = parse_docker_config_json(row["input"])
        assert [e.key for e in entries] == ["http://foo.example.com", "http://bar.example.com"]
        assert [e.username for e in entries] == ["foo", "bar"]
    elif kind == "TestDockerConfigEntryJSONCompatibleEncode":
        # kubelet's encoder output must decode back to what was encoded.
        (entry,) = parse_dockercfg('{"reg": ' + row["expect_json"] + "}")
        want = row["input"]
        assert _creds([entry]) == [(want["username"], want["password"], want["email"])]
    else:  # TestDecodeDockerConfigFieldAuth and the computed unpadded row
        if row["fail"]:
            with pytest.raises(DockerCfgError):
                decode_auth_field(row["input"])
            return
        username, password = decode_auth_field(row["input"])
        assert (username, password.reveal()) == (row["expect"]["username"], row["expect"]["password"])


# --- conformance: secrets_make_docker_keyring -----------------------------------------------


def _secret_rows() -> list[Any]:
    rows = VECTORS["secrets_make_docker_keyring"]
    return [pytest.param(row, id=row["name"].replace(" ", "-")) for row in rows]


@pytest.mark.parametrize("row", _secret_rows())
def test_make_docker_keyring_rows_agree_with_kubelet(row: dict[str, Any]) -> None:
    default = [tuple(c) for c in row["default_keyring"] or []]
    entries = None
    if row["secret_type"] is not None:
        data = {row["data_key"]: row["content"].encode()}
        entries = entries_from_secret("ns", "s", row["secret_type"], data)
    if entries is None:
        # MakeDockerKeyring returns the default keyring itself; the test's fake reports ok=false.
        creds, found = default, False
    else:
        keyring: Keyring[tuple[str, str]] = Keyring()
        for entry in entries:
            keyring.add(entry.key, (entry.username, entry.password.reveal()))
        creds = [m.value for m in keyring.lookup(row["image"])] + default
        found = bool(creds)  # unionDockerKeyring: ok when anything was found
    assert creds == [tuple(c) for c in row["expect_creds"]]
    assert found is row["found"]


# --- Go encoding/json behaviours ------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "want"),
    [
        # Go matches struct fields case-insensitively, including its Unicode fold of long s.
        pytest.param(
            '{"Auths": {"r": {"USERNAME": "u", "Password": "p"}}}', [("u", "p", "")], id="case-fold"
        ),
        pytest.param(
            '{"auth\u017f": {"r": {"u\u017fername": "u"}}}', [("u", "", "")], id="long-s-folds-to-s"
        ),
        pytest.param(
            '{"auths": {"r": {"identitytoken": "t", "registrytoken": "x"}}}',
            [("", "", "")],
            id="tokens-ignored",
        ),
        pytest.param(
            '{"auths": {"r": {"username": "u", "extra": [1, {"a": null}]}}}',
            [("u", "", "")],
            id="unknown-ignored",
        ),
        pytest.param(
            '{"auths": {"r": {"username": "a", "username": "b"}}}', [("b", "", "")], id="last-duplicate-wins"
        ),
        pytest.param(
            '{"auths": {"r": {"username": "a", "username": null}}}', [("a", "", "")], id="null-keeps-string"
        ),
        pytest.param(
            '{"auths": {"r": {"username": "a"}, "r": {"username": "b"}}}', [("b", "", "")], id="dup-key"
        ),
        pytest.param(
            '{"auths": {"a": {}}, "auths": {"b": {}}}', [("", "", ""), ("", "", "")], id="dup-auths-merge"
        ),
        pytest.param('{"auths": {"a": {}}, "auths": null}', [], id="null-auths-clears"),
        pytest.param('{"auths": null}', [], id="null-auths"),
        pytest.param("null", [], id="null-document"),
        pytest.param('{"r": {"username": "u"}}', [], id="no-auths-wrapper"),
        pytest.param('{"auths": {"r": null}}', [("", "", "")], id="null-entry-kept"),
        pytest.param(
            '{"auths": {"r": {"auth": ""}}, "HttpHeaders": {"X": "y"}}', [("", "", "")], id="headers"
        ),
        pytest.param(
            '{"auths": {"r": {"email": "e@x", "auth": "dTpw"}}}', [("u", "p", "e@x")], id="email-kept"
        ),
    ],
)
def test_docker_config_json_decodes_like_go(document: str, want: list[tuple[str, str, str]]) -> None:
    assert _creds(parse_docker_config_json(document)) == want


@pytest.mark.parametrize(
    ("document", "field", "reason", "upstream"),
    [
        pytest.param(
            "[]",
            "",
            "expected a JSON object, found array",
            "json: cannot unmarshal array into Go value of type credentialprovider.DockerConfigJSON",
            id="top-level-array",
        ),
        pytest.param(
            '{"auths": "x"}',
            "auths",
            "expected a JSON object, found string",
            "json: cannot unmarshal string into Go struct field DockerConfigJSON.auths of type "
            "credentialprovider.DockerConfig",
            id="auths-string",
        ),
        pytest.param(
            '{"auths": {"x": {"email": false}}}',
            'auths["x"].email',
            "expected a JSON string, found boolean",
            "json: cannot unmarshal bool into Go struct field DockerConfigJSON.auths.email of type string",
            id="email-bool",
        ),
        pytest.param(
            '{"auths": {"x": [1]}}',
            'auths["x"]',
            "expected a JSON object, found array",
            "json: cannot unmarshal array into Go struct field DockerConfigJSON.auths of type "
            "credentialprovider.dockerConfigEntryWithAuth",
            id="entry-array",
        ),
        pytest.param(
            '{"auths": {"x": {"auth": "bad!"}}}',
            'auths["x"].auth',
            "not base64(username:password): illegal base64 at byte 3",
            "illegal base64 data at input byte 3",
            id="bad-base64",
        ),
        pytest.param(
            '{"auths": {"x": {"auth": "anVzdHVzZXI="}}}',
            'auths["x"].auth',
            "decodes to text without ':'; expected base64(username:password)",
            "unable to parse auth field, must be formatted as base64(username:password)",
            id="no-colon",
        ),
        pytest.param(
            '{"HttpHeaders": 5}',
            "HttpHeaders",
            "expected a JSON object, found number",
            "json: cannot unmarshal number into Go struct field DockerConfigJSON.HttpHeaders of type "
            "map[string]string",
            id="headers-number",
        ),
        # A type error in an outer field is remembered; a later broken entry still wins (Go order).
        pytest.param(
            '{"auths": 1, "Auths": {"x": {"auth": "bad!"}}}',
            'Auths["x"].auth',
            "not base64(username:password): illegal base64 at byte 3",
            "illegal base64 data at input byte 3",
            id="entry-error-beats-saved-error",
        ),
        pytest.param(
            '{"auths": 1, "auths": {"x": {}}}',
            "auths",
            "expected a JSON object, found number",
            "json: cannot unmarshal number into Go struct field DockerConfigJSON.auths of type "
            "credentialprovider.DockerConfig",
            id="saved-error-reported-at-end",
        ),
        pytest.param(
            '{"auths": {"x": {"username": 1, "password": true}}}',
            'auths["x"].username',
            "expected a JSON string, found number",
            "json: cannot unmarshal number into Go struct field DockerConfigJSON.auths.username "
            "of type string",
            id="first-field-error",
        ),
    ],
)
def test_docker_config_json_errors_name_the_field(
    document: str, field: str, reason: str, upstream: str
) -> None:
    with pytest.raises(DockerCfgError) as caught:
        parse_docker_config_json(document)
    assert (caught.value.field, caught.value.reason, caught.value.upstream) == (field, reason, upstream)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param('{"auths": {', id="truncated"),
        pytest.param('{"auths": -Infinity}', id="infinity-is-not-json"),
        pytest.param('{"auths": NaN}', id="nan-is-not-json"),
        pytest.param('{"auths": {}} x', id="trailing-data"),
        pytest.param("\ufeff{}", id="bom"),
        pytest.param(b'{"a": \xff}', id="invalid-utf8-outside-string"),
        # Go accepts up to 10000 levels; Python's recursion limit is lower (documented deviation).
        pytest.param('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}", id="nested-too-deeply"),
    ],
)
def test_invalid_json_is_reported_for_the_whole_document(document: str | bytes) -> None:
    with pytest.raises(DockerCfgError, match=r"^not valid JSON: ") as caught:
        parse_docker_config_json(document)
    assert caught.value.field == ""


def test_legacy_dockercfg_errors_use_bare_paths() -> None:
    with pytest.raises(DockerCfgError) as caught:
        parse_dockercfg('{"ghcr.io": {"email": false}}')
    assert caught.value.field == '["ghcr.io"].email'
    assert caught.value.upstream == (
        "json: cannot unmarshal bool into Go struct field dockerConfigEntryWithAuth.email of type string"
    )


def test_invalid_utf8_inside_strings_becomes_replacement_characters_like_go() -> None:
    (entry,) = parse_docker_config_json(b'{"auths": {"r\xff": {"username": "a\xc3"}}}')
    assert (entry.key, entry.username) == ("r\ufffd", "a\ufffd")


# --- Go encoding/base64 (decodeDockerConfigFieldAuth) -------------------------------------


@pytest.mark.parametrize(
    ("value", "want", "bad_byte"),
    [
        pytest.param("Zm9vOmJhcg==", ("foo", "bar"), None, id="padded"),
        pytest.param("Zm9vOmJhcg", ("foo", "bar"), None, id="unpadded"),
        pytest.param("Zm9v\r\nOmJh\ncg==", ("foo", "bar"), None, id="newlines-skipped"),
        pytest.param("Zm9vOmJhcg==\n", ("foo", "bar"), None, id="trailing-newline"),
        pytest.param("Zm9vOmJhch==", ("foo", "bar"), None, id="non-strict-trailing-bits"),
        pytest.param("OnA=", ("", "p"), None, id="empty-username"),
        pytest.param("dTo6", ("u", ":"), None, id="split-at-first-colon"),
        pytest.param("pants", None, 4, id="dangling-sixbit"),
        pytest.param("bad!", None, 3, id="illegal-character"),
        pytest.param("Zm9vOmJhcg=", None, 11, id="missing-second-pad"),
        pytest.param("Zm9vOmJhc=", None, 9, id="pad-after-one-char"),
        pytest.param("=", None, 0, id="only-pad"),
        # Only a value whose trimmed end is '=' is decoded as padded; here '=' is illegal.
        pytest.param("Zm9vOmJhcg==x", None, 10, id="pad-in-unpadded-value"),
        pytest.param("Zm9vOmJhcg== ", None, 12, id="space-after-pad"),
        pytest.param("Zm9vOmJhcg==\n=", None, 13, id="garbage-after-pad"),
        pytest.param("Zm9v OmJh", None, 4, id="space-is-illegal"),
        pytest.param("Zm9vOmJh=", None, 8, id="pad-at-quantum-start"),
        pytest.param("Zm9vOmJhcg=\n=", ("foo", "bar"), None, id="newline-between-pads"),
        pytest.param("\u00e9", None, 0, id="non-ascii"),
    ],
)
def test_auth_field_decodes_like_go_base64(
    value: str, want: tuple[str, str] | None, bad_byte: int | None
) -> None:
    if bad_byte is not None:
        with pytest.raises(DockerCfgError) as caught:
            decode_auth_field(value)
        assert caught.value.upstream == f"illegal base64 data at input byte {bad_byte}"
        assert caught.value.reason == f"not base64(username:password): illegal base64 at byte {bad_byte}"
        return
    username, password = decode_auth_field(value)
    assert (username, password.reveal()) == want


@given(st.text(st.characters(blacklist_characters=":")), st.text())
def test_base64_of_username_colon_password_round_trips(username: str, password: str) -> None:
    raw = f"{username}:{password}".encode("utf-8", "surrogatepass")
    for encoded in (base64.b64encode(raw).decode(), base64.b64encode(raw).decode().rstrip("=")):
        got_user, got_password = decode_auth_field(encoded)
        assert got_user.encode("utf-8", "surrogateescape") == username.encode("utf-8", "surrogatepass")
        assert got_password.reveal().encode("utf-8", "surrogateescape") == password.encode(
            "utf-8", "surrogatepass"
        )


# --- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret_type", "data", "want"),
    [
        pytest.param(
            JSON_TYPE, {".dockerconfigjson": b'{"auths":{"r":{"auth":"dTpw"}}}'}, ["r"], id="dockerconfigjson"
        ),
        pytest.param(CFG_TYPE, {".dockercfg": b'{"r":{"auth":"dTpw"}}'}, ["r"], id="dockercfg"),
        pytest.param(JSON_TYPE, {".dockerconfigjson": b'{"r":{}}'}, [], id="no-auths-still-read"),
        pytest.param(JSON_TYPE, {".dockerconfigjson": b""}, None, id="empty-data-ignored"),
        pytest.param(JSON_TYPE, {".dockercfg": b'{"r":{}}'}, None, id="type-key-mismatch"),
        pytest.param(CFG_TYPE, {".dockerconfigjson": b'{"auths":{}}'}, None, id="type-key-mismatch-reverse"),
        pytest.param("Opaque", {".dockerconfigjson": b'{"auths":{"r":{}}}'}, None, id="opaque-ignored"),
        pytest.param(None, {".dockerconfigjson": b'{"auths":{"r":{}}}'}, None, id="no-type"),
    ],
)
def test_only_the_two_docker_secret_shapes_are_read(
    secret_type: str | None, data: dict[str, bytes], want: list[str] | None
) -> None:
    entries = entries_from_secret("shop", "regcred", secret_type, data)
    assert (None if entries is None else [e.key for e in entries]) == want


def test_malformed_secret_message_names_secret_document_and_field() -> None:
    data = {".dockerconfigjson": b'{"auths": {"ghcr.io": {"auth": "bad!"}}}'}
    with pytest.raises(SecretMalformedError) as caught:
        entries_from_secret("shop", "regcred", JSON_TYPE, data)
    assert str(caught.value) == (
        'secret shop/regcred: .dockerconfigjson auths["ghcr.io"].auth: '
        "not base64(username:password): illegal base64 at byte 3"
    )
    assert caught.value.upstream == "illegal base64 data at input byte 3"
    assert caught.value.secret == "shop/regcred"


def test_malformed_whole_document_names_only_the_data_key() -> None:
    with pytest.raises(SecretMalformedError) as caught:
        entries_from_secret("shop", "regcred", CFG_TYPE, {".dockercfg": b"[]"})
    assert str(caught.value) == "secret shop/regcred: .dockercfg: expected a JSON object, found array"


# --- no credential leaks, no foreign exceptions ---------------------------------------------


def test_auth_entry_repr_and_str_never_show_the_password() -> None:
    (entry,) = parse_docker_config_json('{"auths": {"r": {"auth": "dTpodW50ZXIy"}}}')
    assert entry.password.reveal() == "hunter2"
    assert "hunter2" not in repr(entry)
    assert "hunter2" not in str(entry)
    assert "hunter2" not in f"{entry}"
    assert entry.password == Secret("hunter2")


@given(st.binary())
def test_arbitrary_bytes_raise_only_dockercfg_errors(raw: bytes) -> None:
    for parse in (parse_docker_config_json, parse_dockercfg):
        with suppress(DockerCfgError):
            parse(raw)
    with suppress(SecretMalformedError):
        entries_from_secret("ns", "s", JSON_TYPE, {".dockerconfigjson": raw})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_ENTRY = st.dictionaries(st.sampled_from(["username", "Password", "email", "auth", "x"]), _JSON | st.text())


@given(
    st.dictionaries(
        st.sampled_from(["auths", "Auths", "HttpHeaders", "other"]),
        st.dictionaries(st.text(max_size=10), _ENTRY | _JSON, max_size=3) | _JSON,
    )
)
def test_structured_documents_raise_only_dockercfg_errors(document: dict[str, Any]) -> None:
    try:
        entries = parse_docker_config_json(json.dumps(document))
    except DockerCfgError:
        return
    assert all(isinstance(e.password, Secret) for e in entries)
