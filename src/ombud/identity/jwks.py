"""The identity provider's signing keys: fetched from its JWKS URL, cached, refetched with a floor.

A token names its key by ``kid``. Keys are cached for a TTL; a ``kid`` not in the cache triggers
one refetch (key rotation at the provider), but never more often than the configured floor, so
tokens carrying made-up key ids cannot turn ombud into a fetch amplifier against the provider.
A failed fetch fails closed: keys past their TTL are not used, and the next attempt waits for
the floor too.

Only public, asymmetric signature keys are kept. Each key carries the algorithms it may verify:
the one it declares (``alg``) or, when it declares none, those its type and curve imply. A token
must use one of them, which is what rules out algorithm/key confusion.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ombud.core.clock import Clock
from ombud.core.errors import Unauthenticated

log = logging.getLogger(__name__)

_RSA = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_CURVES = {"Ed25519": "EdDSA", "Ed448": "EdDSA"}
# JWK members that only private or symmetric keys have; a key set must never publish them.
_SECRET_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MIN_RSA_BITS = 2048


class JwksUnavailable(Exception):
    """The key set could not be fetched or read."""


class JwksFetcher(Protocol):
    """Fetches the raw key-set document; raises :class:`JwksUnavailable` on any failure."""

    async def __call__(self, url: str) -> bytes: ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The configured URL is the one trusted location; a redirect could point anywhere.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class HttpJwksFetcher:
    """Fetches over HTTP(S) with the standard library, in a worker thread.

    Args:
        timeout_s: Deadline for the whole fetch (connect, headers, body).
        max_bytes: Larger documents are refused rather than read.
    """

    def __init__(self, timeout_s: float, max_bytes: int) -> None:
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._opener = urllib.request.build_opener(_NoRedirects())

    async def __call__(self, url: str) -> bytes:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._get, url), timeout=self._timeout_s
            )
        except TimeoutError as exc:
            raise JwksUnavailable("timed out") from exc

    def _get(self, url: str) -> bytes:
        deadline = time.monotonic() + self._timeout_s
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                if response.status != 200:
                    raise JwksUnavailable(f"HTTP {response.status}")
                body = b""
                # read1 returns what has arrived, so a trickling server meets the deadline.
                while chunk := response.read1(65536):
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise JwksUnavailable(f"larger than {self._max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise JwksUnavailable("timed out")
                return body
        # OSError covers URLError, HTTPError (non-2xx, refused redirects), timeouts, refusals.
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise JwksUnavailable(type(exc).__name__) from exc


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A verification key and the algorithms a token signed with it may use."""

    kid: str
    key: jwt.PyJWK
    algorithms: frozenset[str]


def key_algorithms(jwk: Mapping[str, object], allowed: frozenset[str]) -> frozenset[str]:
    """The allowed algorithms a JWK declares or, without ``alg``, implies by ``kty``/``crv``."""
    kty, crv, declared = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if kty == "RSA":
        implied = _RSA
    elif kty == "EC" and isinstance(crv, str) and crv in _EC_CURVES:
        implied = frozenset({_EC_CURVES[crv]})
    elif kty == "OKP" and isinstance(crv, str) and crv in _OKP_CURVES:
        implied = frozenset({_OKP_CURVES[crv]})
    else:
        return frozenset()  # symmetric ("oct") and unknown key types verify nothing here
    if declared is not None:
        implied = implied & {declared} if isinstance(declared, str) else frozenset()
    return implied & allowed


def parse_key_set(document: bytes, allowed: frozenset[str]) -> dict[str, SigningKey]:
    """The usable signature keys of a JWKS document, by ``kid``; unusable ones are logged."""
    try:
        data = json.loads(document)
    except ValueError as exc:
        raise JwksUnavailable("not JSON") from exc
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise JwksUnavailable("no 'keys' list")
    keys: dict[str, SigningKey] = {}
    for entry in entries:
        signing_key = _signing_key(entry, allowed) if isinstance(entry, dict) else None
        if signing_key is None:
            continue
        if signing_key.kid in keys:
            log.warning("JWKS: duplicate kid %r; keeping the first", signing_key.kid)
            continue
        keys[signing_key.kid] = signing_key
    return keys


def _signing_key(entry: dict[str, object], allowed: frozenset[str]) -> SigningKey | None:
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        log.warning("JWKS: skipping a key without kid")
        return None
    ops = entry.get("key_ops")
    if entry.get("use", "sig") != "sig" or (isinstance(ops, list) and "verify" not in ops):
        return None  # an encryption key: not for verifying signatures
    if _SECRET_MEMBERS & entry.keys():
        log.warning("JWKS: skipping key %r: it publishes private or symmetric material", kid)
        return None
    algorithms = key_algorithms(entry, allowed)
    if not algorithms:
        log.warning("JWKS: skipping key %r: no allowed algorithm fits it", kid)
        return None
    try:
        key = jwt.PyJWK(entry, algorithm=min(algorithms))
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        log.warning("JWKS: skipping key %r: %s", kid, exc)
        return None
    if isinstance(key.key, RSAPublicKey) and key.key.key_size < _MIN_RSA_BITS:
        log.warning("JWKS: skipping key %r: RSA key shorter than %d bits", kid, _MIN_RSA_BITS)
        return None
    return SigningKey(kid=kid, key=key, algorithms=algorithms)


class JwksCache:
    """The provider's keys, cached for ``ttl_s`` and refetched at most every ``min_interval_s``.

    Args:
        url: The JWKS URL.
        fetcher: Fetches the document (:class:`HttpJwksFetcher` in production).
        clock: Monotonic time for the TTL and the refetch floor.
        allowed: The algorithms tokens may use (the configured allow-list).
        ttl_s: How long a fetched key set is trusted.
        min_interval_s: Least time between two fetch attempts, successful or not.
    """

    def __init__(
        self,
        url: str,
        fetcher: JwksFetcher,
        clock: Clock,
        *,
        allowed: frozenset[str],
        ttl_s: float,
        min_interval_s: float,
    ) -> None:
        self._url = url
        self._fetch = fetcher
        self._clock = clock
        self._allowed = allowed
        self._ttl_s = ttl_s
        self._min_interval_s = min_interval_s
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """Fetch attempts so far, for metrics and tests."""

    async def key(self, kid: str) -> SigningKey:
        """The key named ``kid``; :class:`Unauthenticated` when unknown or keys are unavailable."""
        found = self._lookup(kid)
        if found is not None:
            return found
        async with self._lock:
            # Another call may have refreshed while this one waited for the lock.
            found = self._lookup(kid)
            if found is None and self._may_fetch():
                await self._refresh()
                found = self._lookup(kid)
        if found is not None:
            return found
        if not self._fresh():
            raise Unauthenticated(detail="token signing keys are unavailable; try again later")
        raise Unauthenticated(detail="token signed with an unknown key")

    def _fresh(self) -> bool:
        return (
            self._fetched_at is not None
            and self._clock.monotonic() - self._fetched_at < self._ttl_s
        )

    def _lookup(self, kid: str) -> SigningKey | None:
        return self._keys.get(kid) if self._fresh() else None

    def _may_fetch(self) -> bool:
        return (
            self._attempted_at is None
            or self._clock.monotonic() - self._attempted_at >= self._min_interval_s
        )

    async def _refresh(self) -> None:
        self._attempted_at = self._clock.monotonic()
        self.fetches += 1
        try:
            keys = parse_key_set(await self._fetch(self._url), self._allowed)
        except JwksUnavailable as exc:
            # Keys still within their TTL stay usable; the next attempt waits for the floor.
            log.warning("JWKS fetch from %s failed: %s", self._url, exc)
            return
        self._keys = keys
        self._fetched_at = self._clock.monotonic()
        log.info("JWKS fetched from %s: %d usable keys", self._url, len(keys))
