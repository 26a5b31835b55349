"""The audit hash chain: canonical bytes, links, checkpoints and verification. No I/O.

Every audit event is linked to the one before it: ``hash = SHA-256(prev_hash || canonical)``,
where ``canonical`` is the event's versioned, sorted-key JSON including its ``seq``. Signed
checkpoints pin the chain head at a point in time. This module is used by the record writer (to
extend the chain), by online verification and by offline verification of an export, so it must
not touch the database, files or the clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ombud.audit.events import AuditEvent, Outcome

CHAIN_VERSION = 1
"""Version of the canonical serialization; part of every hashed and signed message."""
GENESIS = "0" * 64
"""The ``prev_hash`` of the first event of a chain."""
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


def format_time(moment: datetime) -> str:
    """The fixed text form of a timestamp in hashed messages: UTC, microseconds, ``Z``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime in the audit chain")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time`."""
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _dumps(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def event_fields(event: AuditEvent) -> dict[str, JSONValue]:
    """Every field of ``event`` as plain JSON values (the export and hash use this form)."""
    # A JSON round trip gives the detail exactly the shape the database hands back later.
    detail: dict[str, JSONValue] = json.loads(_dumps(event.detail))
    return {
        "event_id": event.event_id,
        "occurred_at": format_time(event.occurred_at),
        "actor": event.actor,
        "action": event.action,
        "resource": event.resource,
        "outcome": event.outcome.value,
        "tenant_id": event.tenant_id,
        "request_id": event.request_id,
        "purpose": event.purpose,
        "subject": event.subject,
        "reason": event.reason,
        "detail": detail,
    }


def event_from_fields(fields: Mapping[str, JSONValue]) -> AuditEvent:
    """Rebuild an event from :func:`event_fields` output (e.g. read from an export).

    Raises:
        ValueError: A field is missing or has the wrong type.
    """
    try:
        detail = fields["detail"]
        if not isinstance(detail, dict):
            raise ValueError("detail must be an object")
        return AuditEvent(
            event_id=str(fields["event_id"]),
            occurred_at=parse_time(str(fields["occurred_at"])),
            actor=str(fields["actor"]),
            action=str(fields["action"]),
            resource=str(fields["resource"]),
            outcome=Outcome(str(fields["outcome"])),
            tenant_id=_optional(fields.get("tenant_id")),
            request_id=_optional(fields.get("request_id")),
            purpose=_optional(fields.get("purpose")),
            subject=_optional(fields.get("subject")),
            reason=_optional(fields.get("reason")),
            detail=detail,
        )
    except KeyError as exc:
        raise ValueError(f"missing field {exc.args[0]!r}") from None


def _optional(value: JSONValue) -> str | None:
    return None if value is None else str(value)


def canonical_bytes(seq: int, event: AuditEvent) -> bytes:
    """The versioned, canonical serialization of ``event`` at position ``seq``."""
    return _dumps({"v": CHAIN_VERSION, "seq": seq, **event_fields(event)})


def link_hash(prev_hash: str, seq: int, event: AuditEvent) -> str:
    """``SHA-256(prev_hash || canonical_bytes(seq, event))`` as lowercase hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_bytes(seq, event)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One event in the chain as stored. ``event`` is None for a link whose content an export
    left out (another tenant's event): its place in the chain is still checked."""

    seq: int
    prev_hash: str
    hash: str
    event: AuditEvent | None


def extend(head_hash: str, head_seq: int, events: Sequence[AuditEvent]) -> list[ChainLink]:
    """Chain ``events`` after the head (``head_seq``, ``head_hash``), seq numbers contiguous."""
    links: list[ChainLink] = []
    prev = head_hash
    for offset, event in enumerate(events, start=1):
        seq = head_seq + offset
        digest = link_hash(prev, seq, event)
        links.append(ChainLink(seq=seq, prev_hash=prev, hash=digest, event=event))
        prev = digest
    return links


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signature by ``key_id`` over the chain head (``seq``, ``hash``) at ``signed_at``."""

    seq: int
    hash: str
    signed_at: datetime
    key_id: str
    signature: str
    """Hex of the Ed25519 signature over :func:`checkpoint_message`."""


def checkpoint_message(seq: int, head_hash: str, signed_at: datetime, key_id: str) -> bytes:
    """The exact bytes a checkpoint signs."""
    return _dumps(
        {
            "v": CHAIN_VERSION,
            "kind": "ombud.audit.checkpoint",
            "seq": seq,
            "hash": head_hash,
            "signed_at": format_time(signed_at),
            "key_id": key_id,
        }
    )


def sign_checkpoint(
    key: Ed25519PrivateKey, key_id: str, seq: int, head_hash: str, signed_at: datetime
) -> Checkpoint:
    """Sign the head (``seq``, ``head_hash``) at ``signed_at``."""
    signature = key.sign(checkpoint_message(seq, head_hash, signed_at, key_id))
    return Checkpoint(seq, head_hash, signed_at, key_id, signature.hex())


def signature_valid(checkpoint: Checkpoint, public_key: Ed25519PublicKey | None) -> bool:
    """Whether ``checkpoint`` carries a valid signature by ``public_key``."""
    if public_key is None:
        return False
    message = checkpoint_message(
        checkpoint.seq, checkpoint.hash, checkpoint.signed_at, checkpoint.key_id
    )
    try:
        public_key.verify(bytes.fromhex(checkpoint.signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


class ProblemKind(StrEnum):
    CHANGED = "changed"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    BAD_CHECKPOINT = "bad_checkpoint"


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """Where verification failed: the kind, the seq it is located at, and a sentence."""

    kind: ProblemKind
    seq: int
    message: str


@dataclass(frozen=True, slots=True)
class Head:
    """The chain head as its table (or an export) states it."""

    seq: int
    hash: str


def verify_chain(
    links: Sequence[ChainLink],
    checkpoints: Sequence[Checkpoint] = (),
    public_keys: Mapping[str, Ed25519PublicKey] | None = None,
    *,
    head: Head | None = None,
    anchored: bool = True,
    first_seq: int | None = None,
) -> list[ChainProblem]:
    """Recompute the chain and check every checkpoint; the problems found, first one first.

    Args:
        links: The chain in stored order (by seq in the database, line order in an export).
        checkpoints: Signed checkpoints to check against the links.
        public_keys: Checkpoint verification keys by key id.
        head: Where the chain is stated to end; without it a deleted tail after the last
            checkpoint cannot be noticed.
        anchored: The links start at the beginning of the chain (``prev_hash`` is the genesis).
        first_seq: The seq the links must start at (an export states it).

    Returns:
        Link problems in chain order, then checkpoint and head problems. Empty: it verifies.
    """
    position = {link.hash: index for index, link in enumerate(links)}
    position.setdefault(GENESIS, -1)
    problems: list[ChainProblem] = []
    for index, link in enumerate(links):
        problem = _check_link(links, index, position)
        if problem is None and index == 0:
            problem = _check_start(link, position, anchored=anchored, first_seq=first_seq)
        if problem is not None:
            problems.append(problem)
    problems.extend(_check_checkpoints(links, checkpoints, public_keys or {}))
    if head is not None:
        problems.extend(_check_head(links, head))
    return problems


def content_problem(link: ChainLink) -> ChainProblem | None:
    """Whether ``link``'s event still hashes to its stored hash (None: it does, or no event)."""
    if link.event is None or link_hash(link.prev_hash, link.seq, link.event) == link.hash:
        return None
    message = f"record at seq {link.seq} was changed: its content does not match its hash"
    return ChainProblem(ProblemKind.CHANGED, link.seq, message)


def _check_start(
    first: ChainLink, position: Mapping[str, int], *, anchored: bool, first_seq: int | None
) -> ChainProblem | None:
    if position.get(first.prev_hash, -1) > 0:
        message = f"record at seq {first.seq} is out of order: it links to a record after it"
        return ChainProblem(ProblemKind.REORDERED, first.seq, message)
    if first_seq is not None and first.seq > first_seq:
        message = f"records from seq {first_seq} to seq {first.seq - 1} were deleted"
        return ChainProblem(ProblemKind.DELETED, first_seq, message)
    if anchored and first.prev_hash != GENESIS:
        message = f"records before seq {first.seq} were deleted: it does not link to the start"
        return ChainProblem(ProblemKind.DELETED, first.seq - 1, message)
    return None


def _check_link(
    links: Sequence[ChainLink], index: int, position: Mapping[str, int]
) -> ChainProblem | None:
    link = links[index]
    changed = content_problem(link)
    if changed is not None:
        return changed
    if index == 0:
        return None
    prev = links[index - 1]
    if link.prev_hash == prev.hash:
        if link.seq <= prev.seq:
            message = f"records are out of order: seq {link.seq} follows seq {prev.seq}"
            return ChainProblem(ProblemKind.REORDERED, link.seq, message)
        return None
    target = position.get(link.prev_hash)
    if target is not None and target >= index:
        message = f"record at seq {link.seq} is out of order: it links to a record after it"
        return ChainProblem(ProblemKind.REORDERED, link.seq, message)
    if target is not None:
        inserted = links[target + 1].seq
        message = (
            f"record at seq {inserted} was inserted: seq {link.seq} links to the record before it"
        )
        return ChainProblem(ProblemKind.INSERTED, inserted, message)
    if link.seq > prev.seq + 1:
        message = f"records between seq {prev.seq} and seq {link.seq} were deleted"
        return ChainProblem(ProblemKind.DELETED, prev.seq + 1, message)
    message = f"record at seq {prev.seq} was rewritten: seq {link.seq} no longer links to it"
    return ChainProblem(ProblemKind.CHANGED, prev.seq, message)


def _check_checkpoints(
    links: Sequence[ChainLink],
    checkpoints: Sequence[Checkpoint],
    public_keys: Mapping[str, Ed25519PublicKey],
) -> list[ChainProblem]:
    by_seq = {link.seq: link for link in links}
    first = links[0].seq if links else 0
    last = links[-1].seq if links else 0
    problems: list[ChainProblem] = []
    for checkpoint in checkpoints:
        when = format_time(checkpoint.signed_at)
        if not signature_valid(checkpoint, public_keys.get(checkpoint.key_id)):
            message = f"checkpoint at seq {checkpoint.seq} (signed {when}) has a broken signature"
            problems.append(ChainProblem(ProblemKind.BAD_CHECKPOINT, checkpoint.seq, message))
            continue
        if checkpoint.seq < first:
            continue
        link = by_seq.get(checkpoint.seq)
        if link is None and checkpoint.seq > last:
            message = (
                f"records after seq {last} were deleted: the checkpoint signed {when} "
                f"covers seq {checkpoint.seq}"
            )
            problems.append(ChainProblem(ProblemKind.TRUNCATED, last + 1, message))
        elif link is None:
            message = f"record at seq {checkpoint.seq}, named by a checkpoint, was deleted"
            problems.append(ChainProblem(ProblemKind.DELETED, checkpoint.seq, message))
        elif link.hash != checkpoint.hash:
            message = (
                f"records up to seq {checkpoint.seq} were rewritten: the chain there differs "
                f"from the checkpoint signed {when}"
            )
            problems.append(ChainProblem(ProblemKind.CHANGED, checkpoint.seq, message))
    return problems


def _check_head(links: Sequence[ChainLink], head: Head) -> list[ChainProblem]:
    last_seq = links[-1].seq if links else 0
    last_hash = links[-1].hash if links else GENESIS
    if head.seq > last_seq:
        message = f"records after seq {last_seq} were deleted: the chain head is at seq {head.seq}"
        return [ChainProblem(ProblemKind.TRUNCATED, last_seq + 1, message)]
    if head.seq < last_seq:
        message = f"records after seq {head.seq} were inserted: the chain head is at seq {head.seq}"
        return [ChainProblem(ProblemKind.INSERTED, head.seq + 1, message)]
    if head.hash != last_hash:
        message = f"record at seq {last_seq} was rewritten: it does not match the chain head"
        return [ChainProblem(ProblemKind.CHANGED, last_seq, message)]
    return []
