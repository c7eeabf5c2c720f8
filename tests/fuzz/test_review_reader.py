"""Hypothesis over pullguard's pure AdmissionReview reader, in-process (no socket, so many examples).

``core.admission.parse_review`` then ``core.workloads.extract`` on structured-but-wrong reviews
(``tests/fuzz/structured.py``) and on arbitrary JSON: only ``BadReview`` values and
``InputError`` come out, each naming a field that exists in the review (``request.object.kind``,
``spec.containers[0].image``...), and a review that parses keeps its ``uid``. The webhook fuzz
(``test_malformed_reviews.py``) checks that the server agrees with this reader.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.structured import json_values, structured_reviews
from tests.fuzz.tally import EXAMPLES, counts_for, tally
from webhook.core.admission import BadReview, parse_review
from webhook.core.errors import InputError
from webhook.core.workloads import extract

TARGET = "AdmissionReview reader (in-process)"
_FIELD = re.compile(r"^(apiVersion|kind|request(\.[A-Za-z]+)*)$")
_envelopes = json_values.map(
    lambda req: json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
).map(str.encode)


@pytest.mark.timeout(120 + EXAMPLES // 40)
@counts_for(TARGET)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=structured_reviews() | _envelopes)
def test_the_reader_refuses_with_a_field_or_reads_the_review(body: bytes) -> None:
    tally(TARGET)
    parsed = parse_review(body)
    doc = json.loads(body)
    if isinstance(parsed, BadReview):
        assert parsed.field and _FIELD.match(parsed.field), parsed
        assert parsed.message
        if parsed.uid is not None:
            assert parsed.uid == doc["request"]["uid"]
        return
    assert parsed.uid == doc["request"]["uid"]
    if parsed.object is None:
        assert parsed.operation in ("DELETE", "CONNECT")
        return
    try:
        template = extract(parsed.object, parsed.namespace or "default", "admission")
    except InputError as exc:
        assert exc.field, exc
        root = exc.field.split(".")[0].split("[")[0]
        assert root in parsed.object or str(exc).endswith("is missing"), (exc.field, parsed.object)
        return
    if template is not None:
        for site in template.images:
            assert site.field.startswith(("spec.", "template."))
