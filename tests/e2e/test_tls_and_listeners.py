"""``ombud serve`` over TLS, and with metrics moved to an internal listener."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    loopback = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(loopback, critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def _serve(tmp_path: Path, **extra: str) -> Iterator[list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
    env.update(
        OMBUD_DATABASE__URL=f"sqlite:///{tmp_path / 'ombud.db'}",
        OMBUD_JOBS__EMBEDDED_WORKER="false",
        OMBUD_CRYPTO__KEYRING_PATH=str(tmp_path / "keyring.json"),
        **extra,
    )
    assert (
        subprocess.run([sys.executable, "-m", "ombud", "migrate"], env=env, check=False).returncode
        == 0
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "ombud", "serve", "--port", "0"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip()]
        if "OMBUD_SERVER__INTERNAL_PORT" in extra:
            lines.append(process.stdout.readline().strip())
        yield [line.split()[-1] for line in lines]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("the server did not stop on SIGINT")


def test_serve_speaks_tls_with_hsts(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with _serve(
        tmp_path, OMBUD_SERVER__TLS_CERT_FILE=str(cert), OMBUD_SERVER__TLS_KEY_FILE=str(key)
    ) as urls:
        [base] = urls
        assert base.startswith("https://")
        response = httpx.get(
            f"{base}/healthz", verify=ssl.create_default_context(cafile=str(cert)), timeout=10
        )
        assert response.status_code == 200
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        with pytest.raises(httpx.HTTPError):
            httpx.get(base.replace("https://", "http://") + "/healthz", timeout=5)


def test_metrics_live_on_the_internal_listener_only(tmp_path: Path) -> None:
    with _serve(tmp_path, OMBUD_SERVER__INTERNAL_PORT="0") as urls:
        public, internal = urls
        assert httpx.get(f"{public}/metrics", timeout=10).status_code == 404
        response = httpx.get(f"{internal}/metrics", timeout=10)
        assert response.status_code == 200
        assert "ombud_http_request_duration_seconds" in response.text
        assert httpx.get(f"{internal}/readyz", timeout=10).status_code == 200
        assert httpx.get(f"{internal}/v1/models/credit-risk/predict", timeout=10).status_code == 404
