"""Property tests of the pure audit chain: any single tampering is detected and located."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ombud.audit.chain import (
    GENESIS,
    ChainLink,
    Checkpoint,
    Head,
    ProblemKind,
    canonical_bytes,
    extend,
    sign_checkpoint,
    verify_chain,
)
from ombud.audit.events import AuditEvent, Outcome

KEY = Ed25519PrivateKey.generate()
KEYS = {"k1": KEY.public_key()}
START = datetime(2025, 1, 1, tzinfo=UTC)
Chain = tuple[list[ChainLink], list[Checkpoint], Head]

json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
json_value = st.recursive(
    json_leaf | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
name = st.text(min_size=1, max_size=12)
optional = st.none() | name


@st.composite
def events(draw: st.DrawFn) -> AuditEvent:
    return AuditEvent(
        event_id=draw(st.uuids()).hex,
        occurred_at=START + timedelta(microseconds=draw(st.integers(0, 10**12))),
        actor=draw(name),
        action=draw(name),
        resource=draw(name),
        outcome=draw(st.sampled_from(Outcome)),
        tenant_id=draw(optional),
        request_id=draw(optional),
        purpose=draw(optional),
        subject=draw(optional),
        reason=draw(optional),
        detail=draw(st.dictionaries(st.text(max_size=5), json_value, max_size=3)),
    )


@st.composite
def chains(draw: st.DrawFn, min_size: int = 1) -> Chain:
    """A chain, checkpoints at some of its seqs (always one somewhere), and its head."""
    links = extend(GENESIS, 0, draw(st.lists(events(), min_size=min_size, max_size=8)))
    if not links:
        return links, [], Head(0, GENESIS)
    at = draw(st.sets(st.integers(0, len(links) - 1), min_size=1, max_size=3))
    checkpoints = [
        sign_checkpoint(KEY, "k1", link.seq, link.hash, START + timedelta(seconds=link.seq))
        for link in (links[i] for i in sorted(at))
    ]
    return links, checkpoints, Head(links[-1].seq, links[-1].hash)


def _verify(
    links: list[ChainLink], checkpoints: list[Checkpoint], head: Head
) -> list[tuple[ProblemKind, int]]:
    return [(p.kind, p.seq) for p in verify_chain(links, checkpoints, KEYS, head=head)]


FIELDS = [
    "event_id", "occurred_at", "actor", "action", "resource", "outcome", "tenant_id",
    "request_id", "purpose", "subject", "reason", "detail",
]  # fmt: skip


def _changed(event: AuditEvent, field: str) -> AuditEvent:
    value = getattr(event, field)
    if field == "occurred_at":
        new: object = value + timedelta(microseconds=1)
    elif field == "outcome":
        new = Outcome.ERROR if value != Outcome.ERROR else Outcome.SUCCESS
    elif field == "detail":
        new = {**value, "tampered": True}
    else:
        new = (value or "") + "x"
    return dataclasses.replace(event, **{field: new})  # type: ignore[arg-type]


@given(chains(min_size=0))
def test_an_untampered_chain_verifies(
    chain: tuple[list[ChainLink], list[Checkpoint], Head],
) -> None:
    assert _verify(*chain) == []


def test_canonical_bytes_are_sorted_versioned_json() -> None:
    event = AuditEvent("e1", START, "a", "act", "r", Outcome.SUCCESS, detail={"b": 1, "a": [2]})
    text = canonical_bytes(7, event).decode()
    assert text.startswith('{"action":"act","actor":"a","detail":{"a":[2],"b":1}')
    assert '"occurred_at":"2025-01-01T00:00:00.000000Z"' in text
    assert '"seq":7' in text
    assert '"v":1' in text


@given(chains(), st.data(), st.sampled_from(FIELDS))
def test_a_changed_field_is_located(chain: Chain, data: st.DataObject, field: str) -> None:
    links, checkpoints, head = chain
    index = data.draw(st.integers(0, len(links) - 1))
    link = links[index]
    assert link.event is not None
    links[index] = dataclasses.replace(link, event=_changed(link.event, field))
    assert _verify(links, checkpoints, head)[0] == (ProblemKind.CHANGED, link.seq)


@given(chains(), st.data(), st.sampled_from(["seq", "prev_hash", "hash"]))
def test_a_changed_chain_field_is_located(chain: Chain, data: st.DataObject, field: str) -> None:
    links, checkpoints, head = chain
    index = data.draw(st.integers(0, len(links) - 1))
    link = links[index]
    value = link.seq + 100 if field == "seq" else "f" * 64
    links[index] = dataclasses.replace(link, **{field: value})  # type: ignore[arg-type]
    # Located where the tampered record now stands.
    assert _verify(links, checkpoints, head)[0] == (ProblemKind.CHANGED, links[index].seq)


@given(chains(min_size=2), st.data())
def test_a_rewritten_record_with_a_recomputed_hash_is_located(
    chain: Chain, data: st.DataObject
) -> None:
    links, checkpoints, head = chain
    index = data.draw(st.integers(0, len(links) - 2))
    link = links[index]
    assert link.event is not None
    forged = extend(link.prev_hash, link.seq - 1, [_changed(link.event, "actor")])[0]
    links[index] = forged
    assert _verify(links, checkpoints, head)[0] == (ProblemKind.CHANGED, link.seq)


@given(chains(min_size=2), st.data())
def test_a_deleted_record_is_located(chain: Chain, data: st.DataObject) -> None:
    links, checkpoints, head = chain
    index = data.draw(st.integers(0, len(links) - 1))
    removed = links.pop(index)
    problems = _verify(links, checkpoints, head)
    assert problems, "a deletion went unnoticed"
    kind, seq = problems[0]
    assert kind in (ProblemKind.DELETED, ProblemKind.TRUNCATED)
    assert seq == removed.seq


@given(chains(), st.data(), events())
def test_an_inserted_record_is_located(
    chain: Chain, data: st.DataObject, event: AuditEvent
) -> None:
    links, checkpoints, head = chain
    index = data.draw(st.integers(0, len(links)))
    before = links[index - 1] if index else None
    # The strongest forger: a record that links correctly to the one before it.
    forged = extend(before.hash if before else GENESIS, before.seq if before else 0, [event])[0]
    links.insert(index, forged)
    problems = _verify(links, checkpoints, head)
    assert problems, "an insertion went unnoticed"
    assert problems[0] == (ProblemKind.INSERTED, forged.seq)


@given(chains(min_size=2), st.data())
def test_two_swapped_records_are_located(chain: Chain, data: st.DataObject) -> None:
    links, checkpoints, head = chain
    first = data.draw(st.integers(0, len(links) - 2))
    second = data.draw(st.integers(first + 1, len(links) - 1))
    links[first], links[second] = links[second], links[first]
    problems = _verify(links, checkpoints, head)
    assert problems, "a swap went unnoticed"
    assert problems[0][0] == ProblemKind.REORDERED
    assert problems[0][1] in (links[first].seq, links[second].seq)


@given(chains(min_size=2), st.data())
def test_a_truncated_tail_after_the_last_checkpoint_is_located(
    chain: Chain, data: st.DataObject
) -> None:
    links, checkpoints, head = chain
    last_signed = max(c.seq for c in checkpoints)
    if last_signed == links[-1].seq:
        checkpoints = [c for c in checkpoints if c.seq < last_signed] or checkpoints[:0]
        last_signed = max((c.seq for c in checkpoints), default=0)
    keep = data.draw(st.integers(last_signed, len(links) - 1))
    problems = _verify(links[:keep], checkpoints, head)
    assert problems == [(ProblemKind.TRUNCATED, keep + 1)]


@given(chains(), st.data(), st.sampled_from(["seq", "hash", "signed_at", "key_id", "signature"]))
def test_a_forged_checkpoint_is_located(chain: Chain, data: st.DataObject, field: str) -> None:
    links, checkpoints, head = chain
    index = data.draw(st.integers(0, len(checkpoints) - 1))
    original = checkpoints[index]
    forged_values: dict[str, object] = {
        "seq": original.seq + 1,
        "hash": "e" * 64,
        "signed_at": original.signed_at + timedelta(seconds=1),
        "key_id": "k2",
        "signature": Ed25519PrivateKey.generate().sign(b"x").hex(),
    }
    checkpoints[index] = dataclasses.replace(original, **{field: forged_values[field]})  # type: ignore[arg-type]
    problems = _verify(links, checkpoints, head)
    assert (ProblemKind.BAD_CHECKPOINT, checkpoints[index].seq) in problems


@given(chains(min_size=2), st.data())
def test_a_consistent_rewrite_after_a_checkpoint_is_caught_by_it(
    chain: Chain, data: st.DataObject
) -> None:
    """A forger who rewrites a record and re-links everything after it still breaks the
    checkpoint that signed the old history."""
    links, checkpoints, _ = chain
    signed = checkpoints[-1].seq
    index = data.draw(st.integers(0, signed - 1))
    events_ = [link.event for link in links]
    assert events_[index] is not None
    original = events_[index]
    assert original is not None
    events_[index] = _changed(original, "reason")
    prefix = links[:index]
    rebuilt = prefix + extend(
        prefix[-1].hash if prefix else GENESIS, index, [e for e in events_[index:] if e]
    )
    head = Head(rebuilt[-1].seq, rebuilt[-1].hash)
    problems = verify_chain(rebuilt, checkpoints, KEYS, head=head)
    assert problems
    assert all(p.kind == ProblemKind.CHANGED for p in problems)
    assert min(p.seq for p in problems) >= index + 1


@settings(max_examples=20)
@given(chains())
def test_an_unknown_key_breaks_every_checkpoint(chain: Chain) -> None:
    links, checkpoints, head = chain
    problems = verify_chain(links, checkpoints, {}, head=head)
    assert {p.kind for p in problems} == {ProblemKind.BAD_CHECKPOINT}


def test_a_naive_time_is_refused() -> None:
    event = AuditEvent("e1", datetime(2025, 1, 1), "a", "b", "c", Outcome.SUCCESS)  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        canonical_bytes(1, event)
