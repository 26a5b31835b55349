"""Credentials as presented on a request. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from ombud.core.errors import Unauthenticated


@dataclass(frozen=True, slots=True)
class PresentedCredentials:
    """The raw ``Authorization`` and ``x-api-key`` header values."""

    authorization: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:
        return "PresentedCredentials(<redacted>)"

    def token(self) -> str:
        """The API key or token; :class:`Unauthenticated` when absent or malformed.

        ``Authorization: Bearer <key>`` wins over ``x-api-key`` (which the Anthropic SDK sends).
        """
        if self.authorization:
            scheme, _, token = self.authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated(detail="Authorization header must be 'Bearer <key>'")
            return token.strip()
        if self.api_key:
            return self.api_key
        raise Unauthenticated(detail="no credentials: send 'Authorization: Bearer <key>'")
