"""Deterministic alert identity: the same fault on the same thing gets the same id across
restarts, so a reloaded alert is recognised instead of being sent again as a new one."""

from __future__ import annotations

import hashlib


def fingerprint(rule: str, labels: tuple[tuple[str, str], ...]) -> str:
    """16 hex digits over the rule and its sorted labels."""
    h = hashlib.sha256(rule.encode())
    for k, v in sorted(labels):
        h.update(b"\0" + k.encode() + b"=" + v.encode())
    return h.hexdigest()[:16]


def alert_id(rule: str, labels: tuple[tuple[str, str], ...], starts_at_s: float) -> str:
    """fingerprint + start in milliseconds: one id per episode of one fault."""
    return f"{fingerprint(rule, labels)}-{round(starts_at_s * 1000)}"
