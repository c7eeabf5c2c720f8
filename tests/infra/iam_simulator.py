"""A wire-level fake of ONE IAM Query API action: ``SimulatePrincipalPolicy``.

Why a fake: moto (5.2.5) does not implement ``iam:SimulatePrincipalPolicy`` — it answers HTTP 500
``NotImplementedError`` (research/test-infrastructure.md §4) — and nothing else that runs here
simulates IAM. So this small HTTP server speaks the real wire format (AWS Query protocol, version
2010-05-08: a form-encoded POST with ``Action=SimulatePrincipalPolicy``, ``ActionNames.member.N``,
``ResourceArns.member.N``, ``ContextEntries.member.N.*``; an XML ``SimulatePrincipalPolicyResponse``
or an ``ErrorResponse``), so pullguard's real boto3 client, botocore parser and result handling run
unchanged. It decides nothing: each test scripts the decision per action and asserts both what
pullguard sent (the recorded requests) and what the user sees. Like IAM it refuses a
``ResourcePolicy`` without a ``CallerArn`` for a role (the policy's Principal needs a caller).

Only 127.0.0.1; one server per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from tests.infra._http import LoopbackHTTP, QuietHandler

_NS = "https://iam.amazonaws.com/doc/2010-05-08/"


@dataclass
class Scripted:
    decision: str = "allowed"  # allowed | explicitDeny | implicitDeny
    matched: Sequence[tuple[str, str]] = ()  # (SourcePolicyId, SourcePolicyType)
    missing_context: Sequence[str] = ()
    details: dict[str, str] = field(default_factory=dict)  # EvalDecisionDetails
    organizations: bool | None = None  # AllowedByOrganizations


def _members(form: dict[str, list[str]], prefix: str) -> list[str]:
    found = []
    n = 1
    while f"{prefix}.member.{n}" in form:
        found.append(form[f"{prefix}.member.{n}"][0])
        n += 1
    return found


def _context(form: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    n = 1
    while f"ContextEntries.member.{n}.ContextKeyName" in form:
        name = form[f"ContextEntries.member.{n}.ContextKeyName"][0]
        out[name] = _members(form, f"ContextEntries.member.{n}.ContextKeyValues")
        n += 1
    return out


class IamSimulator(LoopbackHTTP):
    thread_name = "iam-simulator"

    def __init__(self) -> None:
        self.answers: dict[str, Scripted] = {}
        self.requests: list[dict[str, Any]] = []
        self.refuse: tuple[int, str, str] | None = None  # (status, code, message) for every call

    def answer(self, action: str, **kwargs: Any) -> None:
        self.answers[action.lower()] = Scripted(**kwargs)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                form = parse_qs(self.read_body().decode(), keep_blank_values=True)
                status, body = fake._handle(form)
                self.reply(status, body.encode(), "text/xml")

        return Handler

    # -- the action ----------------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, str]:
        return status, (
            f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )

    def _handle(self, form: dict[str, list[str]]) -> tuple[int, str]:
        action = form.get("Action", [""])[0]
        if action != "SimulatePrincipalPolicy":
            return self._error(400, "InvalidAction", f"{action} is not served by this fake")
        request = {
            "PolicySourceArn": form.get("PolicySourceArn", [""])[0],
            "ActionNames": _members(form, "ActionNames"),
            "ResourceArns": _members(form, "ResourceArns"),
            "ResourcePolicy": form.get("ResourcePolicy", [None])[0],
            "ResourceOwner": form.get("ResourceOwner", [None])[0],
            "CallerArn": form.get("CallerArn", [None])[0],
            "Context": _context(form),
        }
        self.requests.append(request)
        if self.refuse is not None:
            return self._error(*self.refuse)
        if not request["PolicySourceArn"] or not request["ActionNames"]:
            return self._error(400, "InvalidInput", "PolicySourceArn and ActionNames are required")
        if (
            request["ResourcePolicy"]
            and not request["CallerArn"]
            and ":user/" not in request["PolicySourceArn"]
        ):
            return self._error(
                400, "InvalidInput", "CallerArn is required with a ResourcePolicy for this source"
            )
        members = []
        resource = (request["ResourceArns"] or ["*"])[0]
        for name in request["ActionNames"]:
            s = self.answers.get(name.lower(), Scripted())
            matched = "".join(
                f"<member><SourcePolicyId>{escape(pid)}</SourcePolicyId><SourcePolicyType>{escape(kind)}"
                "</SourcePolicyType></member>"
                for pid, kind in s.matched
            )
            missing = "".join(f"<member>{escape(k)}</member>" for k in s.missing_context)
            details = "".join(
                f"<entry><key>{escape(k)}</key><value>{escape(v)}</value></entry>"
                for k, v in s.details.items()
            )
            org = (
                f"<OrganizationsDecisionDetail><AllowedByOrganizations>{str(s.organizations).lower()}"
                "</AllowedByOrganizations></OrganizationsDecisionDetail>"
                if s.organizations is not None
                else ""
            )
            specific = (
                f"<ResourceSpecificResults><member><EvalResourceName>{escape(resource)}</EvalResourceName>"
                f"<EvalResourceDecision>{s.decision}</EvalResourceDecision>"
                f"<MatchedStatements>{matched}</MatchedStatements>"
                f"<MissingContextValues>{missing}</MissingContextValues>"
                f"<EvalDecisionDetails>{details}</EvalDecisionDetails></member></ResourceSpecificResults>"
                if resource != "*"
                else ""
            )
            members.append(
                f"<member><EvalActionName>{escape(name)}</EvalActionName>"
                f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
                f"<EvalDecision>{s.decision}</EvalDecision><MatchedStatements>{matched}</MatchedStatements>"
                f"<MissingContextValues>{missing if resource == '*' else ''}</MissingContextValues>"
                f"<EvalDecisionDetails>{details}</EvalDecisionDetails>{org}{specific}</member>"
            )
        body = (
            f'<SimulatePrincipalPolicyResponse xmlns="{_NS}"><SimulatePrincipalPolicyResult>'
            f"<IsTruncated>false</IsTruncated><EvaluationResults>{''.join(members)}</EvaluationResults>"
            f"</SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            "</ResponseMetadata></SimulatePrincipalPolicyResponse>"
        )
        return 200, body
