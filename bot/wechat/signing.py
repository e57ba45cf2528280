"""The platform's signatures: ``signature`` on every request URL, ``msg_signature`` on envelopes."""

from __future__ import annotations

import hashlib
import hmac


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """``sha1`` of the sorted, concatenated parts, lowercase hex (the platform's rule)."""
    parts = sorted([token, timestamp, nonce, *extra])
    return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()


def signature_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of two signatures."""
    return given is not None and hmac.compare_digest(
        expected.encode(), given.encode("utf-8", "replace")
    )
