"""The Vault transit key provider against a fake Vault over real HTTP on 127.0.0.1."""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr, ValidationError

from ombud.config import CryptoSettings, Settings
from ombud.core.clock import FrozenClock
from ombud.crypto import WrappedKey, build_key_provider
from ombud.crypto.envelope import new_data_key
from ombud.crypto.errors import (
    CryptoError,
    DecryptionFailed,
    KeyProviderDenied,
    KeyProviderUnavailable,
    KeyringError,
)
from ombud.crypto.vault import VERSION_TTL_S, VaultTransitProvider, check_vault_url
from tests.fakes.vault_transit import FakeVaultTransit, Fault

pytestmark = pytest.mark.anyio

KEY = "ombud"
TIMEOUT_S = 0.5
"""Only for the tests that make Vault hang; the others keep a timeout no loaded machine hits."""


@pytest.fixture
def vault() -> Iterator[FakeVaultTransit]:
    with FakeVaultTransit(hang_s=2.0) as fake:
        fake.create_key(KEY)
        yield fake


def _provider(
    vault: FakeVaultTransit,
    *,
    token: str | None = None,
    namespace: str | None = None,
    clock: FrozenClock | None = None,
    create: bool = False,
    timeout_s: float = 10.0,
) -> VaultTransitProvider:
    return VaultTransitProvider(
        vault.url,
        SecretStr(token or vault.token),
        key_name=KEY,
        namespace=namespace,
        timeout_s=timeout_s,
        create=create,
        allow_plain_http=True,
        clock=clock,
    )


def _everything_said(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


async def test_wrap_and_unwrap_round_trip(vault: FakeVaultTransit) -> None:
    provider = _provider(vault)
    data_key = new_data_key()
    wrapped = await provider.wrap(data_key)
    assert wrapped.kek_version == 1
    assert wrapped.ciphertext.startswith(b"vault:v1:")
    assert data_key not in wrapped.ciphertext
    assert await provider.unwrap(wrapped) == data_key
    assert await _provider(vault).unwrap(wrapped) == data_key
    assert ("POST", f"/v1/transit/encrypt/{KEY}") in vault.calls
    assert ("POST", f"/v1/transit/decrypt/{KEY}") in vault.calls


async def test_concurrent_calls_share_the_provider(vault: FakeVaultTransit) -> None:
    provider = _provider(vault)
    keys = [new_data_key() for _ in range(40)]
    wrapped: dict[int, WrappedKey] = {}

    async def wrap(n: int) -> None:
        wrapped[n] = await provider.wrap(keys[n])
        assert await provider.unwrap(wrapped[n]) == keys[n]

    async with anyio.create_task_group() as group:
        for n in range(len(keys)):
            group.start_soon(wrap, n)
    assert len({w.ciphertext for w in wrapped.values()}) == len(keys)
    provider.close()


async def test_versions_follow_the_transit_key(vault: FakeVaultTransit) -> None:
    clock = FrozenClock()
    provider = _provider(vault, clock=clock)
    data_key = new_data_key()
    old = await provider.wrap(data_key)
    assert await provider.current_version() == 1
    assert await provider.add_version() == 2
    assert vault.latest_version(KEY) == 2
    assert await provider.current_version() == 2
    new = await provider.wrap(data_key)
    assert (new.kek_version, new.ciphertext[:9]) == (2, b"vault:v2:")
    assert await provider.unwrap(old) == data_key
    assert await provider.unwrap(new) == data_key

    # A rotation made elsewhere: seen once the cached version expires, and at once by wrap.
    reads = vault.calls.count(("GET", f"/v1/transit/keys/{KEY}"))
    assert vault.rotate_key(KEY) == 3
    assert await provider.current_version() == 2
    assert vault.calls.count(("GET", f"/v1/transit/keys/{KEY}")) == reads
    clock.advance(VERSION_TTL_S)
    assert await provider.current_version() == 3
    assert (await provider.wrap(data_key)).kek_version == 3


async def test_a_wrapped_key_unknown_to_this_process_triggers_a_read(
    vault: FakeVaultTransit,
) -> None:
    rotated_elsewhere = _provider(vault)
    await rotated_elsewhere.add_version()
    wrapped = await rotated_elsewhere.wrap(new_data_key())
    reader = _provider(vault, clock=FrozenClock())
    assert await reader.current_version() == 2
    vault.rotate_key(KEY)
    newer = await _provider(vault).wrap(b"k" * 32)
    assert newer.kek_version == 3
    assert await reader.unwrap(newer) == b"k" * 32
    assert len(await reader.unwrap(wrapped)) == 32


async def test_a_wrapped_key_cannot_be_relabelled_or_altered(vault: FakeVaultTransit) -> None:
    provider = _provider(vault)
    await provider.add_version()
    wrapped = await provider.wrap(new_data_key())
    with pytest.raises(DecryptionFailed):
        await provider.unwrap(WrappedKey(1, wrapped.ciphertext))
    for index in range(len(wrapped.ciphertext)):
        tampered = bytearray(wrapped.ciphertext)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionFailed):
            await provider.unwrap(WrappedKey(2, bytes(tampered)))
    for garbage in (wrapped.ciphertext[:20], b"\xff" * 40, b""):
        with pytest.raises(DecryptionFailed):
            await provider.unwrap(WrappedKey(2, garbage))


async def test_unknown_and_retired_versions_are_keyring_errors(vault: FakeVaultTransit) -> None:
    provider = _provider(vault)
    wrapped = await provider.wrap(new_data_key())
    relabelled = WrappedKey(7, wrapped.ciphertext.replace(b"vault:v1:", b"vault:v7:"))
    with pytest.raises(KeyringError, match="KEK version 7 is not in the transit key"):
        await provider.unwrap(relabelled)
    await provider.add_version()
    vault.set_min_decryption_version(KEY, 2)
    with pytest.raises(KeyringError, match="disallowed by policy"):
        await provider.unwrap(wrapped)


async def test_a_missing_transit_key_is_created_only_when_asked(vault: FakeVaultTransit) -> None:
    with pytest.raises(KeyringError, match="no transit key absent at mount transit"):
        await VaultTransitProvider(
            vault.url, SecretStr(vault.token), key_name="absent", allow_plain_http=True
        ).current_version()
    created = VaultTransitProvider(
        vault.url, SecretStr(vault.token), key_name="absent", allow_plain_http=True, create=True
    )
    assert await created.current_version() == 1
    assert vault.latest_version("absent") == 1
    first_use = VaultTransitProvider(
        vault.url, SecretStr(vault.token), key_name="fresh", allow_plain_http=True, create=True
    )
    assert (await first_use.wrap(b"k" * 32)).kek_version == 1


async def test_a_wrong_token_is_denied_clearly(
    vault: FakeVaultTransit, caplog: pytest.LogCaptureFixture
) -> None:
    token = "hvs.wrong-token-which-must-never-be-shown"
    provider = _provider(vault, token=token)
    wrapped = await _provider(vault).wrap(new_data_key())
    errors: list[CryptoError] = []
    calls: list[Callable[[], Awaitable[object]]] = [
        provider.current_version,
        lambda: provider.wrap(new_data_key()),
        lambda: provider.unwrap(wrapped),
        provider.add_version,
    ]
    for call in calls:
        with pytest.raises(KeyProviderDenied, match="Vault denied .*permission denied") as info:
            await call()
        errors.append(info.value)
    assert vault.latest_version(KEY) == 1
    for exc in errors:
        assert token not in _everything_said(exc)
        assert vault.url in str(exc) or "transit/" in str(exc)
    assert token not in repr(provider)
    assert token not in caplog.text


async def test_the_namespace_header_is_sent() -> None:
    with FakeVaultTransit(namespace="team-a") as namespaced:
        namespaced.create_key(KEY)
        with pytest.raises(KeyProviderDenied):
            await _provider(namespaced).current_version()
        provider = _provider(namespaced, namespace="team-a")
        data_key = new_data_key()
        assert await provider.unwrap(await provider.wrap(data_key)) == data_key


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("unavailable", "failed encrypt on transit/encrypt/ombud: Vault is sealed"),
        ("hang", f"did not answer encrypt on transit/encrypt/ombud within {TIMEOUT_S:g} s"),
        ("reset", "cannot reach Vault .* refused or dropped"),
    ],
)
async def test_faults_are_unavailability_and_pass(
    vault: FakeVaultTransit, fault: Fault, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    provider = _provider(vault, timeout_s=TIMEOUT_S)
    data_key = new_data_key()
    vault.fail_next(2, fault)
    for _ in range(2):
        with pytest.raises(KeyProviderUnavailable, match=message) as info:
            await provider.wrap(data_key)
        assert vault.token not in _everything_said(info.value)
        # Nothing from the HTTP layer (whose request headers hold the token) is attached.
        assert info.value.__cause__ is None
        assert info.value.__context__ is None
    assert await provider.unwrap(await provider.wrap(data_key)) == data_key
    assert vault.token not in caplog.text


async def test_a_hanging_vault_does_not_block_the_event_loop(vault: FakeVaultTransit) -> None:
    provider = _provider(vault, timeout_s=TIMEOUT_S)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    vault.fail_next(1, "hang")
    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        with pytest.raises(KeyProviderUnavailable, match="did not answer"):
            await provider.current_version()
        group.cancel_scope.cancel()
    # Blocked, the loop would not have ticked again before the timeout.
    assert ticks >= 3


async def test_vault_down_is_unavailable(vault: FakeVaultTransit) -> None:
    provider = _provider(vault)
    wrapped = await provider.wrap(new_data_key())
    vault.stop()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: provider.wrap(new_data_key()),
        lambda: provider.unwrap(wrapped),
        provider.add_version,
    ]
    for call in calls:
        with pytest.raises(KeyProviderUnavailable, match="cannot reach Vault") as info:
            await call()
        assert vault.token not in _everything_said(info.value)
    assert isinstance(info.value, KeyringError)


def test_vault_url_must_be_https_outside_dev() -> None:
    assert check_vault_url("https://vault.internal:8200/", allow_plain_http=False) == (
        "https://vault.internal:8200"
    )
    assert check_vault_url("http://127.0.0.1:8200", allow_plain_http=True)
    assert check_vault_url("http://localhost:8200", allow_plain_http=True)
    assert check_vault_url("http://[::1]:8200", allow_plain_http=True)
    for url, dev in [
        ("http://127.0.0.1:8200", False),
        ("http://vault.internal:8200", True),
        ("http://10.0.0.5:8200", True),
    ]:
        with pytest.raises(KeyringError, match="must use https"):
            check_vault_url(url, allow_plain_http=dev)
    for url in ["ftp://vault", "vault.internal:8200", "https://", "https://vault:99999"]:
        with pytest.raises(KeyringError, match="VAULT_URL"):
            check_vault_url(url, allow_plain_http=False)
    with pytest.raises(KeyringError, match="credentials"):
        check_vault_url("https://user:secret@vault.internal", allow_plain_http=False)


def test_the_factory_builds_the_vault_provider(tmp_path: Path) -> None:
    token = SecretStr("hvs.factory-token-not-shown")
    plain = CryptoSettings(provider="vault", vault_url="http://127.0.0.1:8200", vault_token=token)
    with pytest.raises(KeyringError, match="must use https"):
        build_key_provider(plain, create=False)
    provider = build_key_provider(plain, create=True, dev=True)
    assert isinstance(provider, VaultTransitProvider)
    assert "factory-token" not in repr(provider)
    secure = CryptoSettings(
        provider="vault",
        vault_url="https://vault.internal:8200",
        vault_token=token,
        vault_ca_bundle=tmp_path / "ca.pem",
        vault_namespace="team-a",
    )
    assert isinstance(build_key_provider(secure, create=False), VaultTransitProvider)
    with pytest.raises(ValidationError, match="VAULT_URL and OMBUD_CRYPTO__VAULT_TOKEN"):
        CryptoSettings(provider="vault", vault_url="https://vault.internal:8200")
    with pytest.raises(ValidationError):
        CryptoSettings(
            provider="vault", vault_url="https://v", vault_token=token, vault_mount="../x"
        )


def test_settings_read_the_vault_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMBUD_CRYPTO__PROVIDER", "vault")
    monkeypatch.setenv("OMBUD_CRYPTO__VAULT_URL", "https://vault.internal:8200")
    monkeypatch.setenv("OMBUD_CRYPTO__VAULT_TOKEN", "hvs.env-token")
    monkeypatch.setenv("OMBUD_CRYPTO__VAULT_KEY_NAME", "ombud-prod")
    monkeypatch.setenv("OMBUD_CRYPTO__VAULT_TIMEOUT_S", "2.5")
    crypto = Settings().crypto
    assert (crypto.provider, crypto.vault_key_name, crypto.vault_timeout_s) == (
        "vault",
        "ombud-prod",
        2.5,
    )
    assert "hvs.env-token" not in repr(crypto)


async def test_proxy_and_vault_variables_do_not_apply(
    vault: FakeVaultTransit, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
    monkeypatch.setenv("VAULT_TOKEN", "hvs.from-the-environment")
    provider = _provider(vault)
    data_key = new_data_key()
    assert await provider.unwrap(await provider.wrap(data_key)) == data_key
