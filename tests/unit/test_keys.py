from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ombud.identity import keys


def test_generated_keys_are_unique_well_formed_and_carry_their_prefix() -> None:
    issued = [keys.generate() for _ in range(200)]
    assert len({k.token for k in issued}) == 200
    for key in issued:
        assert key.token.startswith(f"omb_{key.prefix}_")
        assert keys.prefix_of(key.token) == key.prefix


def test_verify_accepts_only_the_same_key_and_pepper() -> None:
    key = keys.generate().token
    stored = keys.digest(key, b"pepper")
    assert keys.verify(key, b"pepper", stored)
    assert not keys.verify(key, b"other-pepper", stored)
    assert not keys.verify(keys.generate().token, b"pepper", stored)


@given(st.text(max_size=80))
def test_prefix_of_rejects_anything_that_is_not_a_key(text: str) -> None:
    if keys.prefix_of(text) is not None:
        assert text.startswith("omb_")
        assert len(text) == 4 + 12 + 1 + 43
