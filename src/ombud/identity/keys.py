"""API key format and digests. No I/O.

A key reads ``omb_<prefix>_<secret>``: the 12-hex-digit prefix is stored in clear for lookup and
display; only ``HMAC-SHA256(pepper, key)`` is stored for the whole key. The secret carries 256
random bits, so a keyed fast hash is the right tool (a slow password hash buys nothing against
keys that cannot be guessed) and the pepper makes a copied table useless without the server's
configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_SCHEME = "omb"
_PATTERN = re.compile(r"^omb_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly generated key. ``token`` is shown once and never stored."""

    prefix: str
    token: str


def generate() -> IssuedKey:
    prefix = secrets.token_hex(6)
    return IssuedKey(prefix=prefix, token=f"{_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}")


def prefix_of(token: str) -> str | None:
    """The lookup prefix of a well-formed key, or None for anything else."""
    match = _PATTERN.match(token)
    return match.group(1) if match else None


def digest(token: str, pepper: bytes) -> str:
    return hmac.new(pepper, token.encode(), hashlib.sha256).hexdigest()


def verify(token: str, pepper: bytes, stored_digest: str) -> bool:
    """Constant-time comparison of a presented key against a stored digest."""
    return hmac.compare_digest(digest(token, pepper), stored_digest)
