"""A fake of HashiCorp Vault's transit secrets engine, served over real HTTP on 127.0.0.1.

It implements the subset of the HTTP API that ``hvac``'s transit client uses for key wrapping,
with Vault's paths, payloads, status codes and error shape (``{"errors": [...]}``):

- ``POST /v1/<mount>/encrypt/<name>`` ``{"plaintext": b64}`` → ``{"data": {"ciphertext": ...}}``
- ``POST /v1/<mount>/decrypt/<name>`` ``{"ciphertext": "vault:vN:..."}`` → ``{"data":
  {"plaintext": b64}}``
- ``GET /v1/<mount>/keys/<name>`` → ``latest_version``, ``min_decryption_version``, ``keys``
- ``POST /v1/<mount>/keys/<name>`` (create, 204) and ``POST /v1/<mount>/keys/<name>/rotate``

Every key version is a real AES-256-GCM key (``vault:vN:`` + base64 of nonce, ciphertext and
tag, as Vault's ``aes256-gcm96``), so altered ciphertexts fail as they would against Vault.
Requests need ``X-Vault-Token`` (and ``X-Vault-Namespace`` when a namespace is set); otherwise
403 ``permission denied``. :meth:`FakeVaultTransit.fail_next` injects outages.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Fault = Literal["unavailable", "hang", "reset"]
"""``unavailable``: 503 "Vault is sealed"; ``hang``: silence for ``hang_s``; ``reset``: TCP RST."""

_CIPHERTEXT = re.compile(r"vault:v(\d+):(.*)")
_NONCE = 12


class VaultApiError(Exception):
    """An error answer: its status and Vault's ``errors`` list."""

    def __init__(self, status: int, *errors: str) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = list(errors)


@dataclass
class _Key:
    versions: list[bytes] = field(default_factory=lambda: [AESGCM.generate_key(bit_length=256)])
    created: list[int] = field(default_factory=lambda: [int(time.time())])
    min_decryption_version: int = 1

    def describe(self, name: str) -> dict[str, object]:
        return {
            "name": name,
            "type": "aes256-gcm96",
            "latest_version": len(self.versions),
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": 0,
            "deletion_allowed": False,
            "keys": {str(n): ts for n, ts in enumerate(self.created, start=1)},
        }


class FakeVaultTransit:
    """A fake Vault with a transit engine, for tests. Use it as a context manager.

    Args:
        token: The one token it accepts.
        mount: Where its transit engine is mounted.
        namespace: The namespace requests must name, if any.
        hang_s: How long a ``hang`` fault holds a request before giving up on it.
    """

    def __init__(
        self,
        token: str = "hvs.fake-root-token-0123456789",
        *,
        mount: str = "transit",
        namespace: str | None = None,
        hang_s: float = 5.0,
    ) -> None:
        self.token = token
        self.mount = mount
        self.namespace = namespace
        self.hang_s = hang_s
        self.calls: list[tuple[str, str]] = []
        """(method, path) of every request received, faults included."""
        self._keys: dict[str, _Key] = {}
        self._faults: deque[Fault | None] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Vault is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering; the port then refuses connections."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- test controls, without HTTP -----------------------------------------------------------

    def create_key(self, name: str) -> None:
        with self._lock:
            self._keys.setdefault(name, _Key())

    def rotate_key(self, name: str) -> int:
        with self._lock:
            return self._rotate(name)

    def latest_version(self, name: str) -> int:
        with self._lock:
            return len(self._keys[name].versions)

    def set_min_decryption_version(self, name: str, version: int) -> None:
        with self._lock:
            self._keys[name].min_decryption_version = version

    def fail_next(self, count: int, fault: Fault = "unavailable", *, after: int = 0) -> None:
        """Let ``after`` requests through, then make the next ``count`` fail with ``fault``."""
        with self._lock:
            self._faults.clear()
            self._faults.extend([None] * after + [fault] * count)

    # --- the API ------------------------------------------------------------------------------

    def take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def wait_hang(self) -> None:
        self._stopping.wait(self.hang_s)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> object:
        """Answer one request: the JSON to send with 200, None for 204, or VaultApiError."""
        self.calls.append((method, path))
        if headers.get("x-vault-token") != self.token or (
            self.namespace is not None and headers.get("x-vault-namespace") != self.namespace
        ):
            raise VaultApiError(403, "permission denied")
        prefix = f"/v1/{self.mount}/"
        if not path.startswith(prefix):
            raise VaultApiError(404, f"no handler for route {path!r}")
        route = path.removeprefix(prefix).split("/")
        payload = _json(body) if method == "POST" else {}
        with self._lock:
            return self._route(method, route, payload)

    def _route(self, method: str, route: list[str], payload: dict[str, object]) -> object:
        match method, route:
            case "POST", ["encrypt", name]:
                return {"data": self._encrypt(name, payload.get("plaintext"))}
            case "POST", ["decrypt", name]:
                return {"data": self._decrypt(name, payload.get("ciphertext"))}
            case "GET", ["keys", name]:
                if name not in self._keys:
                    raise VaultApiError(404)
                return {"data": self._keys[name].describe(name)}
            case "POST", ["keys", name]:
                self._keys.setdefault(name, _Key())
                return None
            case "POST", ["keys", name, "rotate"]:
                self._rotate(name)
                return {"data": self._keys[name].describe(name)}
        raise VaultApiError(405, "unsupported operation")

    def _key(self, name: str) -> _Key:
        key = self._keys.get(name)
        if key is None:
            raise VaultApiError(400, "encryption key not found")
        return key

    def _rotate(self, name: str) -> int:
        key = self._keys.get(name)
        if key is None:
            raise VaultApiError(400, "key not found")
        key.versions.append(AESGCM.generate_key(bit_length=256))
        key.created.append(int(time.time()))
        return len(key.versions)

    def _encrypt(self, name: str, plaintext: object) -> dict[str, object]:
        key = self._key(name)
        try:
            data = base64.b64decode(str(plaintext), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise VaultApiError(400, "failed to base64-decode plaintext") from exc
        version = len(key.versions)
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(key.versions[version - 1]).encrypt(nonce, data, None)
        encoded = base64.b64encode(nonce + sealed).decode()
        return {"ciphertext": f"vault:v{version}:{encoded}", "key_version": version}

    def _decrypt(self, name: str, ciphertext: object) -> dict[str, object]:
        key = self._key(name)
        # Vault's own error strings (sdk/helper/keysutil/policy.go).
        match = _CIPHERTEXT.fullmatch(str(ciphertext))
        if match is None:
            raise VaultApiError(400, "invalid ciphertext: no prefix")
        version = int(match.group(1))
        if version > len(key.versions):
            raise VaultApiError(400, "invalid ciphertext: version is too new")
        if version < key.min_decryption_version:
            raise VaultApiError(
                400, "ciphertext or signature version is disallowed by policy (too old)"
            )
        try:
            blob = base64.b64decode(match.group(2), validate=True)
            data = AESGCM(key.versions[version - 1]).decrypt(blob[:_NONCE], blob[_NONCE:], None)
        except (binascii.Error, ValueError):
            raise VaultApiError(400, "invalid ciphertext: could not decode base64") from None
        except InvalidTag:
            raise VaultApiError(400, "cipher: message authentication failed") from None
        return {"plaintext": base64.b64encode(data).decode()}


def _json(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body or b"{}")
    except ValueError as exc:
        raise VaultApiError(400, "failed to parse JSON input") from exc
    if not isinstance(document, dict):
        raise VaultApiError(400, "failed to parse JSON input")
    return document


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], fake: FakeVaultTransit
    ) -> None:
        super().__init__(address, handler)
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def drop_connections(self) -> None:
        """End kept-alive connections too, as a Vault that went down would."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (timeout) or a reset fault leaves a dead socket; that is expected.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer would wait ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.server.fake
        fault = fake.take_fault()
        if fault is not None:
            fake.calls.append((method, self.path))
            self._fault(fault)
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            answer = fake.handle(method, self.path, headers, body)
        except VaultApiError as exc:
            self._send(exc.status, {"errors": exc.errors})
            return
        self._send(200 if answer is not None else 204, answer)

    def _fault(self, fault: Fault) -> None:
        if fault == "unavailable":
            self._send(503, {"errors": ["Vault is sealed"]})
        elif fault == "hang":
            self.server.fake.wait_hang()
            self.close_connection = True
        else:
            # SO_LINGER with a zero timeout turns close() into a TCP reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

    def _send(self, status: int, document: object) -> None:
        raw = b"" if document is None else json.dumps(document).encode()
        self.send_response(status)
        if raw:
            # hvac parses error bodies only with exactly this content type.
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
