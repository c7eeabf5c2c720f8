"""A finding: something about a workload that is not one image's pull result.

Every fallback kubelet takes silently (a missing pull secret, an unreadable node config, a
workload no node group accepts) becomes a finding, never only a log line (STYLE rule 4).
``severity`` decides whether it can deny: ``error`` denies like a failed image; ``warning`` is
shown (and sent as a kubectl warning) but never denies on its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # secret-missing, secret-unreadable, image-missing, no-node-group, ...
    field: str | None
    message: str
    severity: str = "warning"  # error | warning | info

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "field": self.field, "message": self.message}
        if self.severity != "warning":
            out["severity"] = self.severity
        return out
