"""The demo's data subject: an applicant whose standing data is in the feature store, so the
README's second predict call sends only the application and names the subject."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from ombud.container import Container
from ombud.core.errors import Conflict
from ombud.demo.credit_model import PROFILE_VIEW
from ombud.demo.example import APPLICATION, EXAMPLE_APPLICANT
from ombud.features.ingest import IngestService
from ombud.features.online_reads import find_view
from ombud.features.schemas import EventIn
from ombud.features.wiring import materialize_jobs
from ombud.identity.principal import Principal
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.privacy.exclusions import TrainingExclusions
from ombud.privacy.repository import PrivacyRepository
from ombud.privacy.schemas import ConsentWrite, SubjectCreate
from ombud.privacy.service import PrivacyService
from ombud.privacy.wiring import lookup_key

EXTERNAL_ID = "demo-applicant-1"


async def seed_applicant(container: Container, api_key: str) -> str:
    """Create (once) the demo applicant with consent for credit scoring and its standing data
    as an event, and materialize it; returns its pseudonymous id. ``api_key`` is the demo key:
    the applicant belongs to its tenant."""
    async with container.sessions() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        analyst = await identity.authenticate(api_key)
    # The bank's own systems act for the demo: a service principal of the demo tenant.
    principal = dataclasses.replace(
        analyst, id="demo-seed", name="demo seed", roles=frozenset({"service"})
    )
    privacy = PrivacyService(
        container.regions, clock=container.clock, records=container.records,
        authorizer=container.authorizer, keys=container.keys, access=container.data_access,
        settings=container.settings.privacy, lookup_key=lookup_key(container),
    )  # fmt: skip
    region = container.settings.privacy.regions[0]
    try:
        created = await privacy.create_subject(
            principal,
            SubjectCreate(
                region=region, name="Demo Applicant", external_id=EXTERNAL_ID
            ),  # fmt: skip
        )
        subject_id = created.subject_id
    except Conflict:
        subject_id = await _existing(container, principal, privacy)
    consent = ConsentWrite(purpose="credit_scoring", status="granted", source="demo_seed")
    await privacy.record_consent(principal, subject_id, consent)
    profile = {k: v for k, v in EXAMPLE_APPLICANT.items() if k not in APPLICATION}
    catalog = container.online_features.catalog
    view = find_view(catalog, PROFILE_VIEW.name, PROFILE_VIEW.version)
    event = EventIn(
        type=view.source, entity_id=subject_id, event_id=f"{EXTERNAL_ID}-profile",
        timestamp=container.clock.now() - timedelta(minutes=1),
        payload={name: profile[name] for name in (f.name for f in view.features)},
    )  # fmt: skip
    ingest = IngestService(
        container.regions, catalog, container.clock, container.records, max_skew=timedelta(0),
        exclusions=TrainingExclusions(container.sessions, lookup_key(container)),
    )  # fmt: skip
    await ingest.ingest(principal, [event], batch=False, request_id=None)
    await materialize_jobs(container).materialize(
        [view], tenant_id=principal.tenant_id, now=container.clock.now()
    )
    return subject_id


async def _existing(container: Container, principal: Principal, privacy: PrivacyService) -> str:
    ref = privacy.external_ref(principal.tenant_id, EXTERNAL_ID)
    for store in container.regions.stores:
        async with store.sessions() as session:
            row = await PrivacyRepository(session).subject_by_ref(principal.tenant_id, ref)
        if row is not None:
            return row.id
    raise LookupError("the demo applicant exists but cannot be found")
