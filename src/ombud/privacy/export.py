"""The right of access (GDPR Art. 15): one JSON bundle of everything ombud holds on a subject.

:meth:`ExportService.export` authorizes ``subject.export`` on the subject (the caller's tenant
only), then reads through the data access layer for the purpose ``data_subject_request`` (a
legal obligation, every category), so the export itself is audited and appears in the access
history it lists. The bundle:

- ``subject`` (id, region, created) and ``profile`` (the decrypted vault);
- ``consents`` and ``preferences``, current and every change;
- ``purposes``: for each purpose the subject's data was used or consented for, the lawful
  basis, data categories, retention and recipients (Art. 15(1)(a)-(d));
- ``features``: the subject's events (offline store) and its current online values per view;
- ``predictions``: model, version, time, purpose, the decrypted inputs, the outputs, the
  explanation and any recorded outcome, newest first (at most :data:`MAX_PREDICTIONS`;
  ``truncated`` says when more exist);
- ``decisions``: each automated decision and each human review outcome;
- ``reviews``: the review items about the subject;
- ``access_history``: who read which categories of its data, for which purpose, when;
- ``sources``: where the data came from; ``generated_at``.

The export is audited (``subject.export``) with the section counts and the SHA-256 digest of
the bundle as the record of what was handed out. An erased subject answers 410.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.audit.events import AuditEvent, Outcome
from ombud.authz import Authorizer, Resource
from ombud.core.clock import Clock
from ombud.core.errors import NotFound
from ombud.core.ids import new_id
from ombud.crypto.service import KeyManager
from ombud.features.definitions import FeatureCatalog
from ombud.features.online_regional import RegionalOnlineStore
from ombud.features.tables import FeatureEventRow
from ombud.identity.principal import Principal
from ombud.outcomes.tables import PredictionOutcomeRow
from ombud.predictions.explanations import ExplanationRepository, open_contributions
from ombud.predictions.sealing import unseal
from ombud.predictions.tables import PredictionRow
from ombud.privacy.access import DataAccess
from ombud.privacy.regions import RegionalStores
from ombud.privacy.repository import PrivacyRepository
from ombud.privacy.service import open_vault
from ombud.privacy.tables import DataSubjectRow
from ombud.records.writer import RecordWriter
from ombud.review.tables import ReviewRow

ACTION = "subject.export"
PURPOSE = "data_subject_request"
MAX_PREDICTIONS = 1000
MAX_EVENTS = 10_000


class ExportService:
    """Builds a subject's access bundle (see the module docstring)."""

    def __init__(
        self,
        *,
        regions: RegionalStores,
        sessions: async_sessionmaker[AsyncSession],
        keys: KeyManager,
        access: DataAccess,
        authorizer: Authorizer,
        records: RecordWriter,
        clock: Clock,
        views: FeatureCatalog,
        online: RegionalOnlineStore | None,
    ) -> None:
        self._regions = regions
        self._sessions = sessions
        self._keys = keys
        self._access = access
        self._authorizer = authorizer
        self._records = records
        self._clock = clock
        self._views = views
        self._online = online

    async def export(
        self, principal: Principal, subject_id: str, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """The bundle of ``subject_id``.

        Raises:
            Forbidden: the principal may not export subjects.
            NotFound: no such subject in the principal's tenant.
            SubjectErased: the subject's key is destroyed.
        """
        self._authorizer.authorize(principal, ACTION, Resource(kind="subject"))
        home = await self._regions.home(subject_id)
        async with home.sessions() as session:
            subject = await session.get(DataSubjectRow, subject_id)
        if subject is None:
            raise NotFound(detail=f"no subject {subject_id!r}")
        resource = Resource(kind="subject", id=subject_id, tenant_id=subject.tenant_id)
        self._authorizer.authorize(principal, ACTION, resource)
        catalog = self._access.catalog
        grant = await self._access.check(
            principal, subject_id=subject_id, purpose=PURPOSE,
            categories=sorted(catalog.categories), request_id=request_id,
        )  # fmt: skip
        async with home.sessions() as session:
            bundle = await self._subject_part(session, subject)
            bundle["features"] = await self._features(session, subject)
        predictions, truncated = await self._predictions(subject)
        reviews = await self._reviews(subject)
        bundle |= {
            "predictions": predictions,
            "predictions_truncated": truncated,
            "decisions": _decisions(predictions, reviews),
            "reviews": reviews,
        }
        bundle["purposes"] = self._purposes(bundle)
        bundle["sources"] = _sources(bundle)
        bundle["generated_at"] = self._clock.now().isoformat()
        bundle["export_access_id"] = grant.access_id
        await self._audit(principal, subject, bundle, request_id)
        return bundle

    async def _subject_part(self, session: AsyncSession, subject: DataSubjectRow) -> dict[str, Any]:
        repo = PrivacyRepository(session)
        vault = await repo.vault(subject.id)
        profile: dict[str, Any] = {}
        if vault is not None:
            opened = await open_vault(self._keys, vault)
            profile = opened.model_dump(mode="json", exclude_none=True)
        consents = [
            {"purpose": c.purpose, "status": c.status, "source": c.source,
             "recorded_at": _iso(c.recorded_at), "recorded_by": c.recorded_by}
            for c in await repo.consents(subject.id)
        ]  # fmt: skip
        preferences = [
            {"personalization_opt_out": p.personalization_opt_out,
             "automated_decision_opt_out": p.automated_decision_opt_out,
             "recorded_at": _iso(p.recorded_at), "recorded_by": p.recorded_by}
            for p in await repo.preferences(subject.id)
        ]  # fmt: skip
        accesses = [
            {"access_id": a.access_id, "actor": a.actor, "purpose": a.purpose,
             "categories": list(a.categories), "request_id": a.request_id,
             "accessed_at": _iso(a.accessed_at)}
            for a in await repo.accesses(subject.id)
        ]  # fmt: skip
        return {
            "subject": {"subject_id": subject.id, "region": subject.region,
                        "created_at": _iso(subject.created_at)},
            "profile": profile,
            "consents": {"current": {c["purpose"]: c for c in consents}, "history": consents},
            "preferences": {"current": preferences[-1] if preferences else None,
                            "history": preferences},
            "access_history": accesses,
        }  # fmt: skip

    async def _features(self, session: AsyncSession, subject: DataSubjectRow) -> dict[str, Any]:
        e = FeatureEventRow
        stmt = (
            select(e)
            .where(e.tenant_id == subject.tenant_id, e.entity_id == subject.id)
            .order_by(e.event_ts)
            .limit(MAX_EVENTS)
        )
        events = [
            {"type": r.event_type, "event_id": r.event_id, "timestamp": _iso(r.event_ts),
             "ingested_at": _iso(r.ingested_ts), "payload": r.payload}
            for r in await session.scalars(stmt)
        ]  # fmt: skip
        online: dict[str, Any] = {}
        if self._online is not None:
            for view in self._views.views.values():
                if view.entity != "subject":
                    continue
                found = await self._online.read(subject.tenant_id, view.id, [subject.id])
                if subject.id in found:
                    record = found[subject.id]
                    online[view.id] = {"values": record.values,
                                       "materialized_at": _iso(record.materialized_at)}  # fmt: skip
        return {"events": events, "online": online}

    async def _predictions(self, subject: DataSubjectRow) -> tuple[list[dict[str, Any]], bool]:
        p = PredictionRow
        where = (p.tenant_id == subject.tenant_id, p.subject == subject.id)
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(p).where(*where))
            rows = list(
                await session.scalars(
                    select(p).where(*where).order_by(p.created_at.desc()).limit(MAX_PREDICTIONS)
                )
            )
            outcomes = {
                o.prediction_id: o
                for o in await session.scalars(
                    select(PredictionOutcomeRow).where(
                        PredictionOutcomeRow.prediction_id.in_([r.id for r in rows])
                    )
                )
            }
            explanations = ExplanationRepository(session)
            result = []
            for row in rows:
                explanation = await explanations.get(row.id)
                contributions = (
                    await open_contributions(self._keys, explanation) if explanation else None
                )
                outcome = outcomes.get(row.id)
                result.append({
                    "prediction_id": row.id, "model": row.model_name,
                    "model_version": row.model_version, "purpose": row.purpose,
                    "created_at": _iso(row.created_at),
                    "inputs": await unseal(self._keys, row.inputs, prediction_id=row.id),
                    "outputs": row.outputs, "feature_views": row.feature_views,
                    "explanation": contributions,
                    "outcome": None if outcome is None else {
                        "label": outcome.label, "observed_at": _iso(outcome.observed_at)},
                })  # fmt: skip
        return result, int(total or 0) > len(result)

    async def _reviews(self, subject: DataSubjectRow) -> list[dict[str, Any]]:
        r = ReviewRow
        stmt = (
            select(r)
            .where(r.tenant_id == subject.tenant_id, r.subject == subject.id)
            .order_by(r.created_at)
        )
        async with self._sessions() as session:
            return [
                {"review_id": row.id, "resource": row.resource, "reason": row.reason,
                 "status": row.status, "recommendation": row.recommendation,
                 "inputs": row.inputs, "decision": row.decision, "outcome": row.outcome,
                 "justification": row.justification, "decided_by": row.decided_by,
                 "decided_at": _iso(row.decided_at), "created_at": _iso(row.created_at)}
                for row in await session.scalars(stmt)
            ]  # fmt: skip

    def _purposes(self, bundle: dict[str, Any]) -> list[dict[str, Any]]:
        used = {c["purpose"] for c in bundle["consents"]["history"]}
        used |= {a["purpose"] for a in bundle["access_history"]}
        used |= {p["purpose"] for p in bundle["predictions"] if p["purpose"]}
        listed = []
        for name in sorted(used):
            spec = self._access.catalog.purpose(name)
            if spec is None:
                continue
            listed.append({
                "purpose": name, "description": spec.description,
                "lawful_basis": spec.lawful_basis.value, "categories": list(spec.categories),
                "retention_days": spec.retention_days, "recipients": list(spec.recipients),
            })  # fmt: skip
        return listed

    async def _audit(
        self,
        principal: Principal,
        subject: DataSubjectRow,
        bundle: dict[str, Any],
        request_id: str | None,
    ) -> None:
        digest = hashlib.sha256(
            json.dumps(bundle, sort_keys=True, default=str).encode()
        ).hexdigest()
        counts = {key: len(value) for key, value in bundle.items() if isinstance(value, list)} | {
            "events": len(bundle["features"]["events"])
        }
        await self._records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=self._clock.now(), actor=principal.id,
                action=ACTION, resource=f"subject:{subject.id}", outcome=Outcome.SUCCESS,
                tenant_id=subject.tenant_id, request_id=request_id, purpose=PURPOSE,
                subject=subject.id, detail={"sha256": digest, "counts": counts},
            )
        ])  # fmt: skip


def _decisions(
    predictions: list[dict[str, Any]], reviews: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    automated = [
        {"kind": "automated", "prediction_id": p["prediction_id"], "model": p["model"],
         "model_version": p["model_version"], "decision": (p["outputs"] or {}).get("decision"),
         "at": p["created_at"]}
        for p in predictions
    ]  # fmt: skip
    human = [
        {"kind": "human_review", "review_id": r["review_id"], "status": r["status"],
         "decision": r["decision"], "justification": r["justification"],
         "at": r["decided_at"]}
        for r in reviews
        if r["decision"] is not None
    ]  # fmt: skip
    return automated + human


def _sources(bundle: dict[str, Any]) -> list[dict[str, str]]:
    sources = [
        {
            "data": "profile, consents, preferences",
            "source": "provided by you or on your behalf through the controller's systems",
        }
    ]
    types = sorted({e["type"] for e in bundle["features"]["events"]})
    if types:
        sources.append(
            {
                "data": "events: " + ", ".join(types),
                "source": "sent by the controller's systems (event ingestion)",
            }
        )
    if bundle["predictions"]:
        sources.append(
            {
                "data": "predictions, explanations",
                "source": "derived by the controller's models from the data above",
            }
        )
    return sources  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
