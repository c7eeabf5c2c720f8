"""Structured logs: one JSON object per line on stderr, for ``pullguard serve``.

A record's ``extra={"fields": {...}}`` becomes top-level keys next to ``ts``, ``level``,
``logger`` and ``msg``. Callers put names, field paths and outcomes there — never a credential
(DESIGN 5); exception text is included, and pullguard's own exceptions never carry one
(``core.errors``). Configured once by the composition root; modules only call ``logging``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_RESERVED = frozenset({"ts", "level", "logger", "msg"})
#: Keys every line of this process carries (``serve --workers N``: ``{"worker": slot}``).
_PROCESS_FIELDS: dict[str, Any] = {}

#: HTTP client libraries log whole request URLs (httpx at INFO, urllib3/botocore at DEBUG). A
#: redirect to a presigned blob URL carries credentials in its query string (ECR's S3 and GCS
#: redirects: X-Amz-Security-Token, X-Goog-Signature), so these loggers stay at WARNING whatever
#: ``--log-level`` says (DESIGN 5: never log a credential).
QUIET_LIBRARIES = ("httpx", "httpcore", "hpack", "h2", "urllib3", "botocore", "boto3", "google", "kubernetes")


class JsonFormatter(logging.Formatter):
    """``{"ts": "2026-01-02T03:04:05.678Z", "level": "info", "logger": ..., "msg": ..., ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_PROCESS_FIELDS)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                doc[key if key not in _RESERVED else f"field.{key}"] = value
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False, separators=(",", ":"))


def tag_process(**fields: Any) -> None:
    """Add ``fields`` to every later line of this process (a worker says which one it is)."""
    _PROCESS_FIELDS.update(fields)


def configure(level: str = "info") -> None:
    """Route every logger (pullguard's, uvicorn's) to JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
