"""An identity provider for tests: signing keys, a local JWKS server that counts fetches, tokens.

The server runs on 127.0.0.1 in a thread; tests change what it serves (``keys``, ``status``,
``body``, ``delay_s``) between requests to simulate rotation, outages and hostile answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.test/realms/ombud"
AUDIENCE = "ombud-api"
JWKS_PATH = "/.well-known/jwks.json"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKeyPair:
    """A private key the provider signs with and the JWK it publishes for it."""

    kid: str
    alg: str
    private: PrivateKey
    declare_alg: bool = True

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        data.update(kid=self.kid, use="sig")
        if self.declare_alg:
            data["alg"] = self.alg
        return data

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rsa_key(kid: str = "rsa-1", alg: str = "RS256", *, declare_alg: bool = True) -> SigningKeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKeyPair(kid, alg, private, declare_alg)


def ec_key(kid: str = "ec-1") -> SigningKeyPair:
    return SigningKeyPair(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def ed25519_key(kid: str = "ed-1") -> SigningKeyPair:
    return SigningKeyPair(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def claims(now: float, **changes: Any) -> dict[str, Any]:
    """Claims of a valid user token issued at ``now``; ``name=None`` drops a claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1234",
        "tenant": "demo",
        "roles": ["analyst"],
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 300,
        "email": "ada@example.test",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def mint(
    key: SigningKeyPair, payload: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None
) -> str:
    """A token signed by ``key`` (its kid and algorithm in the header unless overridden)."""
    header = {"kid": key.kid, **(headers or {})}
    return jwt.encode(dict(payload), key.private, algorithm=key.alg, headers=header)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def alg_none(keys: Mapping[str, SigningKeyPair], now: float) -> str:
    return unsigned({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims(now)) + "."


def hs256_with_public_key(keys: Mapping[str, SigningKeyPair], now: float) -> str:
    """The classic key confusion: HMAC keyed with the RSA public key anyone can download."""
    signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(now))
    mac = hmac.new(keys["rsa"].public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def tampered_payload(keys: Mapping[str, SigningKeyPair], now: float) -> str:
    header, _, signature = mint(keys["rsa"], claims(now)).split(".")
    forged = b64(json.dumps(claims(now, roles=["admin"])).encode())
    return f"{header}.{forged}.{signature}"


def tampered_signature(keys: Mapping[str, SigningKeyPair], now: float) -> str:
    header, payload, signature = mint(keys["rsa"], claims(now)).split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    return f"{header}.{payload}.{flipped}"


@dataclass
class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that counts the fetches it answers."""

    keys: list[SigningKeyPair]
    status: int = 200
    body: bytes | None = None
    """Served instead of the key set when set (hostile or broken documents)."""
    delay_s: float = 0.0
    fetches: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{JWKS_PATH}"

    def document(self) -> bytes:
        if self.body is not None:
            return self.body
        return json.dumps({"keys": [key.jwk() for key in self.keys]}).encode()

    @contextmanager
    def running(self) -> Iterator[JwksServer]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def _handler(owner: JwksServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
            owner.fetches += 1
            if owner.delay_s:
                time.sleep(owner.delay_s)  # a slow provider, on the server's thread
            body = owner.document() if self.path == JWKS_PATH else b"{}"
            self.send_response(owner.status if self.path == JWKS_PATH else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None

    return Handler
