"""Verifying the audit chain online (the database) and offline (an export), and exporting it.

An export is JSON Lines: a ``header``, the ``public_key`` lines, the chain in seq order (an
``event`` line for each selected event, a content-free ``link`` line for any other event in the
exported seq range, so the chain still links), the ``checkpoint`` lines in that range, and a
closing ``head`` line. ``verify_export`` needs nothing but the file.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.audit.chain import (
    CHAIN_VERSION,
    ChainLink,
    ChainProblem,
    Checkpoint,
    Head,
    content_problem,
    event_fields,
    event_from_fields,
    format_time,
    parse_time,
    verify_chain,
)
from ombud.audit.checkpoints import PublicKey, public_keys
from ombud.audit.repository import AuditFilter, AuditRepository, matching_seqs

EXPORT_FORMAT = "ombud.audit.export"
PAGE = 2000


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a verification found. ``problems[0]`` is the first problem; empty: it verifies."""

    events: int
    checkpoints: int
    head: Head | None
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class ExportFormatError(ValueError):
    """An export file is not one ``ombud audit export`` writes (names the line)."""


async def verify_database(
    sessions: async_sessionmaker[AsyncSession], *, trusted: Collection[str] | None = None
) -> VerifyReport:
    """Recompute the whole chain from the database and check every checkpoint.

    Args:
        trusted: Fingerprints of the signing keys to believe. Keys stored beside the chain can
            be replaced by whoever can rewrite it; pinned, a checkpoint signed by any other key
            is reported as broken.
    """
    skeleton: list[ChainLink] = []
    changed: list[ChainProblem] = []
    async with sessions() as session:
        repository = AuditRepository(session)
        head = await repository.head()
        after = 0
        while page := await repository.links(after_seq=after, limit=PAGE):
            for link in page:
                # Contents are checked page by page; only the links are kept for the rest.
                problem = content_problem(link)
                if problem is not None:
                    changed.append(problem)
                skeleton.append(ChainLink(link.seq, link.prev_hash, link.hash, None))
            after = page[-1].seq
        checkpoints = await repository.checkpoints()
        keys = _loaded(await public_keys(session), trusted)
    problems = changed + verify_chain(skeleton, checkpoints, keys, head=head, anchored=True)
    problems.sort(key=lambda problem: problem.seq)
    return VerifyReport(len(skeleton), len(checkpoints), head, problems)


def _loaded(
    keys: Iterable[PublicKey], trusted: Collection[str] | None
) -> dict[str, Ed25519PublicKey]:
    return {key.key_id: key.load() for key in keys if trusted is None or key.fingerprint in trusted}


async def export_lines(
    sessions: async_sessionmaker[AsyncSession], selection: AuditFilter, *, exported_at: datetime
) -> AsyncIterator[str]:
    """The export of ``selection`` as JSON Lines (each string one line, newline included)."""
    async with sessions() as session:
        repository = AuditRepository(session)
        span = await repository.seq_range(selection)
        low, high = span if span is not None else (0, 0)
        yield _line(
            type="header", format=EXPORT_FORMAT, version=CHAIN_VERSION, from_seq=low,
            to_seq=high, exported_at=format_time(exported_at),
        )  # fmt: skip
        for key in await public_keys(session):
            yield _line(
                type="public_key", algorithm="ed25519", key_id=key.key_id, public_key=key.public_key
            )
        if span is None:
            return
        last = ChainLink(0, "", "", None)
        after = low - 1
        while page := await repository.links(after_seq=after, limit=PAGE, until_seq=high):
            selected = await matching_seqs(session, selection, page[0].seq, page[-1].seq)
            for link in page:
                yield _link_line(link, link.seq in selected)
            last, after = page[-1], page[-1].seq
        for checkpoint in await repository.checkpoints():
            if low <= checkpoint.seq <= high:
                yield _checkpoint_line(checkpoint)
        yield _line(type="head", seq=last.seq, hash=last.hash)


def _line(**fields: object) -> str:
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _link_line(link: ChainLink, selected: bool) -> str:
    if selected and link.event is not None:
        return _line(
            type="event", seq=link.seq, prev_hash=link.prev_hash, hash=link.hash,
            event=event_fields(link.event),
        )  # fmt: skip
    return _line(type="link", seq=link.seq, prev_hash=link.prev_hash, hash=link.hash)


def _checkpoint_line(checkpoint: Checkpoint) -> str:
    return _line(
        type="checkpoint", seq=checkpoint.seq, hash=checkpoint.hash,
        signed_at=format_time(checkpoint.signed_at), key_id=checkpoint.key_id,
        signature=checkpoint.signature,
    )  # fmt: skip


@dataclass
class _Export:
    first_seq: int | None = None
    links: list[ChainLink] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    public_keys: list[PublicKey] = field(default_factory=list)
    head: Head | None = None


def verify_export(lines: Iterable[str], *, trusted: Collection[str] | None = None) -> VerifyReport:
    """Verify an export offline: the chain it carries, its checkpoints, its head.

    ``trusted`` pins the signing keys by fingerprint, as for :func:`verify_database`: the keys
    an export carries are otherwise taken on its word.

    Raises:
        ExportFormatError: A line is not valid export JSON; its number is in the message.
    """
    export = _Export()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            _read_line(export, json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise ExportFormatError(f"line {number}: {exc}") from None
    keys = _loaded(export.public_keys, trusted)
    problems = verify_chain(
        export.links, export.checkpoints, keys, head=export.head, anchored=False,
        first_seq=export.first_seq,
    )  # fmt: skip
    return VerifyReport(len(export.links), len(export.checkpoints), export.head, problems)


def _read_line(export: _Export, line: Mapping[str, object]) -> None:
    kind = line["type"]
    if kind == "header":
        if line["format"] != EXPORT_FORMAT or line["version"] != CHAIN_VERSION:
            raise ValueError("not an ombud audit export of a known version")
        export.first_seq = _int(line["from_seq"]) or None
    elif kind == "public_key":
        key = PublicKey(str(line["key_id"]), str(line["public_key"]))
        export.public_keys.append(key)
    elif kind in ("event", "link"):
        event = line.get("event")
        export.links.append(
            ChainLink(
                seq=_int(line["seq"]), prev_hash=str(line["prev_hash"]), hash=str(line["hash"]),
                event=event_from_fields(event) if isinstance(event, dict) else None,
            )
        )  # fmt: skip
    elif kind == "checkpoint":
        export.checkpoints.append(
            Checkpoint(
                seq=_int(line["seq"]), hash=str(line["hash"]),
                signed_at=parse_time(str(line["signed_at"])), key_id=str(line["key_id"]),
                signature=str(line["signature"]),
            )
        )  # fmt: skip
    elif kind == "head":
        export.head = Head(seq=_int(line["seq"]), hash=str(line["hash"]))
    else:
        raise ValueError(f"unknown line type {kind!r}")


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, not {value!r}")
    return value
