"""The ciphertext format and the data-key cache: no I/O, no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ombud.core.clock import FrozenClock
from ombud.crypto import envelope
from ombud.crypto._cache import DataKeyCache
from ombud.crypto.envelope import OVERHEAD, DataKey, KeyScope
from ombud.crypto.errors import DecryptionFailed

ALICE = KeyScope("subject", "sub_alice")
BOB = KeyScope("subject", "sub_bob")


def _key(owner: KeyScope = ALICE) -> DataKey:
    return DataKey(envelope.new_key_id(), owner, envelope.new_data_key())


def _open(key: DataKey, ciphertext: bytes, aad: bytes = b"") -> bytes:
    return envelope.open_envelope(key, envelope.parse(ciphertext), aad)


def _key_id_of(ciphertext: bytes) -> str:
    return "dk_" + ciphertext[1:17].hex()


def test_round_trip_and_layout() -> None:
    key = _key()
    ciphertext = envelope.seal(key, b"IBAN DE89 3704 0044 0532 0130 00", b"row:1")
    assert len(ciphertext) == OVERHEAD + 32
    assert ciphertext[0] == envelope.FORMAT_VERSION
    assert envelope.parse(ciphertext).key_id == key.key_id
    assert _open(key, ciphertext, b"row:1") == b"IBAN DE89 3704 0044 0532 0130 00"


def test_the_same_plaintext_encrypts_differently_each_time() -> None:
    key = _key()
    assert envelope.seal(key, b"same") != envelope.seal(key, b"same")


def test_altering_any_byte_fails() -> None:
    key = _key()
    ciphertext = envelope.seal(key, b"secret value", b"aad")
    for index in range(len(ciphertext)):
        for flip in (0x01, 0x80):
            tampered = bytearray(ciphertext)
            tampered[index] ^= flip
            # A flipped key-id byte names another key: try this key under that id anyway.
            renamed = DataKey(_key_id_of(bytes(tampered)), key.owner, key.material)
            with pytest.raises(DecryptionFailed):
                _open(renamed, bytes(tampered), b"aad")


def test_truncation_and_extension_fail() -> None:
    key = _key()
    ciphertext = envelope.seal(key, b"secret value")
    for length in (0, 1, OVERHEAD - 1, len(ciphertext) - 1):
        with pytest.raises(DecryptionFailed):
            _open(key, ciphertext[:length])
    with pytest.raises(DecryptionFailed):
        _open(key, ciphertext + b"\x00")


def test_wrong_aad_fails() -> None:
    key = _key()
    ciphertext = envelope.seal(key, b"secret", b"table:a/row:1")
    for aad in (b"", b"table:a/row:2", b"table:a/row:1\x00"):
        with pytest.raises(DecryptionFailed):
            _open(key, ciphertext, aad)


def test_a_ciphertext_is_bound_to_its_owner_and_key() -> None:
    key = _key(ALICE)
    ciphertext = envelope.seal(key, b"secret")
    moved = DataKey(key.key_id, BOB, key.material)
    with pytest.raises(DecryptionFailed):
        _open(moved, ciphertext)
    with pytest.raises(DecryptionFailed):
        _open(_key(ALICE), ciphertext)


def test_scope_owner_and_aad_cannot_be_shifted_into_each_other() -> None:
    key = DataKey(envelope.new_key_id(), KeyScope("subject", "ab"), envelope.new_data_key())
    ciphertext = envelope.seal(key, b"secret", b"c")
    shifted = DataKey(key.key_id, KeyScope("subject", "a"), key.material)
    with pytest.raises(DecryptionFailed):
        _open(shifted, ciphertext, b"bc")


def test_malformed_key_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="malformed data key id"):
        envelope.seal(DataKey("dk_xyz", ALICE, envelope.new_data_key()), b"x")


def test_data_keys_never_show_their_material() -> None:
    key = _key()
    assert key.material.hex() not in repr(key)
    assert str(key.material) not in repr(key)


@given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=64))
def test_round_trip_of_arbitrary_bytes(plaintext: bytes, aad: bytes) -> None:
    key = _key()
    ciphertext = envelope.seal(key, plaintext, aad)
    assert len(ciphertext) == len(plaintext) + OVERHEAD
    assert _open(key, ciphertext, aad) == plaintext


def test_cache_expires_entries_on_the_injected_clock() -> None:
    clock = FrozenClock()
    cache = DataKeyCache(clock, size=10, ttl_s=60)
    key = _key()
    cache.put(key, generation=cache.generation)
    assert cache.by_owner(ALICE) == key
    clock.advance(59)
    assert cache.by_id(key.key_id) == key
    clock.advance(1)
    assert cache.by_id(key.key_id) is None
    assert cache.by_owner(ALICE) is None


def test_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = DataKeyCache(FrozenClock(), size=2, ttl_s=60)
    first, second, third = _key(ALICE), _key(BOB), _key(KeyScope("system", "secrets"))
    cache.put(first, generation=0)
    cache.put(second, generation=0)
    assert cache.by_id(first.key_id) == first
    cache.put(third, generation=0)
    assert len(cache) == 2
    assert cache.by_id(second.key_id) is None
    assert cache.by_owner(BOB) is None
    assert cache.by_id(first.key_id) == first


def test_cache_refuses_keys_loaded_before_an_eviction() -> None:
    cache = DataKeyCache(FrozenClock(), size=10, ttl_s=60)
    key = _key()
    generation = cache.generation
    cache.evict(ALICE)
    cache.put(key, generation=generation)
    assert cache.by_owner(ALICE) is None


@pytest.mark.parametrize(("size", "ttl"), [(0, 60.0), (10, 0.0)])
def test_cache_can_be_turned_off(size: int, ttl: float) -> None:
    cache = DataKeyCache(FrozenClock(), size=size, ttl_s=ttl)
    cache.put(_key(), generation=cache.generation)
    assert len(cache) == 0
