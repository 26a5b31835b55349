"""The HashiCorp Vault transit key provider: the key-encryption key never leaves Vault.

Transit is "encryption as a service": ombud sends a data key, Vault returns it encrypted under a
named transit key as ``vault:v<N>:<base64>``, and only Vault can decrypt it again. Transit key
versions are the KEK versions of :class:`~ombud.crypto.provider.KeyProvider`:

- ``wrap`` is ``POST /v1/<mount>/encrypt/<key>``; N of the answer is the wrapped key's version.
- ``unwrap`` is ``POST /v1/<mount>/decrypt/<key>``.
- ``current_version`` is the key's ``latest_version`` (``GET /v1/<mount>/keys/<key>``), cached
  for a few seconds.
- ``add_version`` is ``POST /v1/<mount>/keys/<key>/rotate``, then a fresh read of the key.

``hvac`` is synchronous, so every request runs in a worker thread (at most ``max_concurrency`` at
once) and a slow Vault never blocks the event loop. Failures become :mod:`ombud.crypto.errors`
exceptions raised outside the original exception's context: the HTTP layer's request objects,
whose headers carry the token, are not reachable from what the caller receives.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import hvac
import hvac.exceptions
import requests
from pydantic import SecretStr

from ombud.core.clock import Clock, SystemClock
from ombud.crypto.errors import (
    CryptoError,
    DecryptionFailed,
    KeyProviderDenied,
    KeyProviderUnavailable,
    KeyringError,
)
from ombud.crypto.provider import WrappedKey

log = logging.getLogger(__name__)

VERSION_TTL_S = 5.0
"""How long a read ``latest_version`` is trusted; a rotation elsewhere is seen within this time."""
MAX_CONCURRENCY = 16
"""Vault requests in flight per provider; also caps the worker threads a Vault outage can hold."""

_CIPHERTEXT = re.compile(r"vault:v([1-9][0-9]{0,9}):[A-Za-z0-9+/=]+")
_T = TypeVar("_T")

# hvac status classes that mean "try again later" rather than "this cannot work".
_TRANSIENT: tuple[type[hvac.exceptions.VaultError], ...] = (
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
    hvac.exceptions.VaultDown,
    hvac.exceptions.VaultNotInitialized,
    hvac.exceptions.RateLimitExceeded,
)
_DENIED: tuple[type[hvac.exceptions.VaultError], ...] = (
    hvac.exceptions.Forbidden,
    hvac.exceptions.Unauthorized,
)
# Vault's answers to a decrypt whose version it does not hold (policy.go): a provider problem,
# not a tampered ciphertext.
_UNKNOWN_VERSION = ("version is too new", "disallowed by policy")


class _Transit(Protocol):
    """The part of ``hvac``'s transit API this provider uses (hvac itself is untyped)."""

    def encrypt_data(self, name: str, plaintext: str, *, mount_point: str) -> object: ...
    def decrypt_data(self, name: str, ciphertext: str, *, mount_point: str) -> object: ...
    def read_key(self, name: str, *, mount_point: str) -> object: ...
    def rotate_key(self, name: str, *, mount_point: str) -> object: ...
    def create_key(self, name: str, *, key_type: str, mount_point: str) -> object: ...


class VaultTransitProvider:
    """A :class:`~ombud.crypto.provider.KeyProvider` backed by a Vault transit key.

    Args:
        url: Vault's address, ``https://host:port``; no credentials, query or fragment.
        token: The Vault token. Kept as a ``SecretStr``; never logged or put in an error.
        mount: Where the transit engine is mounted.
        key_name: The transit key that wraps data keys.
        namespace: The Vault Enterprise namespace, if any.
        ca_bundle: CA certificates (PEM) to verify Vault's certificate; None: the system's.
        timeout_s: Longest one request may take to connect, and then to answer.
        create: Create the transit key (``aes256-gcm96``) when it does not exist; dev mode only.
        allow_plain_http: Allow ``http://`` to a loopback address (dev mode only).
        version_ttl_s: How long a read ``latest_version`` is reused.
        max_concurrency: Requests in flight at once.
        clock: Measures ``version_ttl_s``.

    Raises:
        KeyringError: The URL is malformed, or plain http where it is not allowed.
    """

    def __init__(
        self,
        url: str,
        token: SecretStr,
        *,
        mount: str = "transit",
        key_name: str = "ombud",
        namespace: str | None = None,
        ca_bundle: Path | None = None,
        timeout_s: float = 5.0,
        create: bool = False,
        allow_plain_http: bool = False,
        version_ttl_s: float = VERSION_TTL_S,
        max_concurrency: int = MAX_CONCURRENCY,
        clock: Clock | None = None,
    ) -> None:
        self._url = check_vault_url(url, allow_plain_http=allow_plain_http)
        self._token = token
        self._mount = mount
        self._key = key_name
        self._namespace = namespace
        self._verify: bool | str = str(ca_bundle) if ca_bundle is not None else True
        self._timeout_s = timeout_s
        self._create = create
        self._ttl_s = version_ttl_s
        self._clock = clock or SystemClock()
        self._limiter = anyio.CapacityLimiter(max_concurrency)
        # requests sessions are not documented as thread-safe: one client per worker thread.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        self._latest = 0
        self._read_at: float | None = None

    def __repr__(self) -> str:
        return f"VaultTransitProvider(url={self._url!r}, key={self._mount}/keys/{self._key})"

    async def current_version(self) -> int:
        now = self._clock.monotonic()
        if self._read_at is not None and now - self._read_at < self._ttl_s:
            return self._latest
        return await self._refresh()

    async def wrap(self, data_key: bytes) -> WrappedKey:
        if self._create and self._read_at is None:
            await self._refresh()  # creates a missing key: encrypt alone would not (dev mode)
        encoded = base64.b64encode(data_key).decode("ascii")
        ciphertext = await self._call("encrypt", functools.partial(self._encrypt, encoded))
        match = _CIPHERTEXT.fullmatch(ciphertext)
        if match is None:
            raise KeyringError(f"Vault answered encrypt on {self._path('encrypt')} unexpectedly")
        version = int(match.group(1))
        self._latest = max(self._latest, version)
        return WrappedKey(kek_version=version, ciphertext=ciphertext.encode("ascii"))

    async def unwrap(self, wrapped: WrappedKey) -> bytes:
        ciphertext = _ciphertext_of(wrapped)
        if wrapped.kek_version > self._latest:
            latest = await self._refresh()
            if wrapped.kek_version > latest:
                raise KeyringError(
                    f"KEK version {wrapped.kek_version} is not in the transit key "
                    f"{self._mount}/keys/{self._key} (latest is {latest})"
                )
        encoded = await self._call("decrypt", functools.partial(self._decrypt, ciphertext))
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyringError(
                f"Vault answered decrypt on {self._path('decrypt')} unexpectedly"
            ) from exc

    async def add_version(self) -> int:
        version = await self._call("rotate", self._rotate)
        self._remember(version)
        log.info(
            "transit key %s/keys/%s: version %d is now current", self._mount, self._key, version
        )
        return version

    def close(self) -> None:
        """Close the HTTP connections of every worker thread's client."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    async def _refresh(self) -> int:
        version = await self._call("read", self._read_latest)
        self._remember(version)
        return version

    def _remember(self, version: int) -> None:
        # Versions only grow; a slower, older read must not move the cache backwards.
        self._latest = max(self._latest, version)
        self._read_at = self._clock.monotonic()

    async def _call(self, what: str, work: Callable[[_Transit], _T]) -> _T:
        # Not abandoned when cancelled: the thread ends within timeout_s, holding its limiter slot.
        guarded = functools.partial(self._guarded, what, work)
        return await anyio.to_thread.run_sync(guarded, limiter=self._limiter)

    # --- in a worker thread -------------------------------------------------------------------

    def _guarded(self, what: str, work: Callable[[_Transit], _T]) -> _T:
        """Run one request; Vault's and the transport's errors become ours, with no context."""
        error: CryptoError
        try:
            return work(self._transit())
        except hvac.exceptions.VaultError as exc:
            error = self._from_vault(what, exc)
        except requests.RequestException as exc:
            error = self._from_transport(what, exc)
        except (KeyError, TypeError, ValueError) as exc:
            error = KeyringError(f"Vault answered {what} on {self._path(what)} unexpectedly")
            log.debug("unexpected Vault answer to %s: %s", what, type(exc).__name__)
        log.warning("Vault %s failed: %s", what, error)
        # Raised outside the except blocks on purpose: the hvac and requests exceptions (and the
        # request headers holding the token) must not ride along as __context__.
        raise error

    def _transit(self) -> _Transit:
        transit: _Transit | None = getattr(self._local, "transit", None)
        if transit is None:
            session = requests.Session()
            # config.py is the only reader of the environment: no proxy or CA variables apply.
            session.trust_env = False
            session.verify = self._verify
            client = hvac.Client(
                url=self._url,
                token=self._token.get_secret_value(),
                verify=self._verify,
                timeout=self._timeout_s,
                namespace=self._namespace,
                session=session,
            )
            with self._lock:
                self._sessions.append(session)
            transit = client.secrets.transit
            self._local.transit = transit
        return transit

    def _encrypt(self, plaintext: str, transit: _Transit) -> str:
        answer = transit.encrypt_data(self._key, plaintext, mount_point=self._mount)
        return _field(answer, "ciphertext")

    def _decrypt(self, ciphertext: str, transit: _Transit) -> str:
        answer = transit.decrypt_data(self._key, ciphertext, mount_point=self._mount)
        return _field(answer, "plaintext")

    def _read_latest(self, transit: _Transit) -> int:
        try:
            answer = transit.read_key(self._key, mount_point=self._mount)
        except hvac.exceptions.InvalidPath:
            if not self._create:
                raise
            transit.create_key(self._key, key_type="aes256-gcm96", mount_point=self._mount)
            log.warning("created the transit key %s/keys/%s (dev mode)", self._mount, self._key)
            answer = transit.read_key(self._key, mount_point=self._mount)
        return _latest_version(answer)

    def _rotate(self, transit: _Transit) -> int:
        transit.rotate_key(self._key, mount_point=self._mount)
        return self._read_latest(transit)

    def _path(self, what: str) -> str:
        if what in ("encrypt", "decrypt"):
            return f"{self._mount}/{what}/{self._key}"
        suffix = "/rotate" if what == "rotate" else ""
        return f"{self._mount}/keys/{self._key}{suffix}"

    def _from_vault(self, what: str, exc: hvac.exceptions.VaultError) -> CryptoError:
        reason = _reason(exc)
        where = f"{what} on {self._path(what)}"
        if isinstance(exc, _DENIED):
            return KeyProviderDenied(
                f"Vault denied {where} ({reason}): the token is invalid or expired, or its "
                "policy lacks the capability"
            )
        if isinstance(exc, _TRANSIENT):
            return KeyProviderUnavailable(f"Vault at {self._url} failed {where}: {reason}")
        if isinstance(exc, hvac.exceptions.InvalidPath):
            return KeyringError(
                f"Vault has no transit key {self._key} at mount {self._mount} ({reason})"
            )
        if what == "decrypt" and isinstance(exc, hvac.exceptions.InvalidRequest):
            if any(marker in reason for marker in _UNKNOWN_VERSION):
                return KeyringError(f"Vault cannot {where} at that key version: {reason}")
            return DecryptionFailed("the wrapped data key cannot be unwrapped")
        return KeyringError(f"Vault refused {where}: {reason}")

    def _from_transport(self, what: str, exc: requests.RequestException) -> CryptoError:
        where = f"{what} on {self._path(what)}"
        if isinstance(exc, requests.exceptions.SSLError):
            return KeyringError(
                f"TLS to Vault at {self._url} failed during {where}: check its certificate "
                "and OMBUD_CRYPTO__VAULT_CA_BUNDLE"
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return KeyProviderUnavailable(
                f"Vault at {self._url} did not answer {where} within {self._timeout_s:g} s"
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            return KeyProviderUnavailable(
                f"cannot reach Vault at {self._url} for {where}: the connection was refused "
                "or dropped"
            )
        return KeyProviderUnavailable(
            f"the request to Vault at {self._url} for {where} failed ({type(exc).__name__})"
        )


def check_vault_url(url: str, *, allow_plain_http: bool) -> str:
    """Validate Vault's address and return it without a trailing slash.

    Args:
        url: The configured address.
        allow_plain_http: Whether ``http://`` is acceptable for a loopback host (dev mode).

    Raises:
        KeyringError: It is not an http(s) URL with a host, it carries credentials, a query or a
            fragment, or it is plain http where only https is allowed.
    """
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        raise KeyringError(f"OMBUD_CRYPTO__VAULT_URL is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise KeyringError("OMBUD_CRYPTO__VAULT_URL must be https://host[:port]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise KeyringError(
            "OMBUD_CRYPTO__VAULT_URL must not carry credentials, a query or a fragment "
            "(the token goes in OMBUD_CRYPTO__VAULT_TOKEN)"
        )
    if parts.scheme == "http" and not (allow_plain_http and _is_loopback(host)):
        raise KeyringError(
            "OMBUD_CRYPTO__VAULT_URL must use https: the token and every data key cross this "
            "connection (plain http is accepted only for a loopback Vault in dev mode)"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ciphertext_of(wrapped: WrappedKey) -> str:
    """The transit ciphertext of a wrapped key, whose ``vault:vN:`` must match its version."""
    try:
        text = wrapped.ciphertext.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    match = _CIPHERTEXT.fullmatch(text)
    # Vault picks the key version from the prefix; a relabelled row must not be unwrapped.
    if match is None or int(match.group(1)) != wrapped.kek_version:
        raise DecryptionFailed("the wrapped data key cannot be unwrapped")
    return text


def _reason(exc: hvac.exceptions.VaultError) -> str:
    """Vault's own error strings (``errors`` in its answer), never the URL or a response body."""
    errors = exc.errors if isinstance(exc.errors, list) else []
    text = "; ".join(str(error) for error in errors)[:200]
    return text or type(exc).__name__


def _data(answer: object) -> dict[str, object]:
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
        raise ValueError("no data object in Vault's answer")
    data: dict[str, object] = answer["data"]
    return data


def _field(answer: object, name: str) -> str:
    value = _data(answer).get(name)
    if not isinstance(value, str):
        raise ValueError(f"no {name} in Vault's answer")
    return value


def _latest_version(answer: object) -> int:
    value = _data(answer).get("latest_version")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("no latest_version in Vault's answer")
    return value
