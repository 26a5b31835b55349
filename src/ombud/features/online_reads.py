"""Online feature reads with a declared purpose: the one way features leave the online store.

:meth:`OnlineFeatures.get_features` is what the HTTP route and in-process callers (a predict
path, say) use alike, so both get the same checks in the same order:

1. the principal may ``feature.read`` (before the view is looked up, so a caller without the
   right cannot probe which views exist), for this view in its own tenant;
2. a purpose is declared, and the entity ids are well formed (at most :data:`MAX_ENTITIES`);
3. for a view about data subjects, the data access layer allows reading the view's
   ``data_categories`` of EVERY subject asked for, for that purpose (consent, tenancy,
   policy; each check audited there). One refusal refuses the whole read, before anything is
   read from the store;
4. the values are read from the online store of the caller's tenant and served: missing or
   older than the view's ``ttl_s`` (by the injected clock) as nulls.
"""

from __future__ import annotations

from collections.abc import Sequence

from ombud.authz import Authorizer, Resource
from ombud.core.clock import Clock
from ombud.core.errors import FieldError, InvalidRequest, PurposeRequired
from ombud.features.definitions import SUBJECT, SUBJECT_ID, FeatureCatalog, FeatureView
from ombud.features.online import FeatureRow, serve
from ombud.features.online_regional import RegionalOnlineStore
from ombud.identity.principal import Principal
from ombud.observability.metrics import Metrics
from ombud.privacy.access import DataAccess
from ombud.privacy.purposes import PurposeCatalog

ACTION = "feature.read"
RESOURCE_KIND = "feature_view"
MAX_ENTITIES = 100
"""Most entities one online read may ask for."""


def category_problems(catalog: FeatureCatalog, purposes: PurposeCatalog) -> list[str]:
    """Views whose ``data_categories`` the purposes catalog does not define (none: usable)."""
    return [
        f"{view.id}: unknown data categories {sorted(unknown)}"
        for view in catalog.views.values()
        if (unknown := set(view.data_categories) - set(purposes.categories))
    ]


def find_view(catalog: FeatureCatalog, view_id: str, version: int | None = None) -> FeatureView:
    """The view whose id is ``view_id`` (``credit_applicant_v1``), else the view named so
    (at ``version``, default its highest).

    Raises:
        NotFound: no such view or version.
    """
    if version is None:
        for view in catalog.views.values():
            if view.id == view_id:
                return view
    return catalog.view(view_id, version)


class OnlineFeatures:
    """Consent-checked reads of the online store (see the module docstring).

    Args:
        catalog: The declared views.
        store: The online store adapter.
        data_access: The gate before subject data.
        authorizer: Decides ``feature.read``.
        clock: Decides staleness.
        metrics: Counts served rows by view and result.
    """

    def __init__(
        self,
        catalog: FeatureCatalog,
        store: RegionalOnlineStore,
        data_access: DataAccess,
        authorizer: Authorizer,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._data_access = data_access
        self._authorizer = authorizer
        self._clock = clock
        self._metrics = metrics

    @property
    def store(self) -> RegionalOnlineStore:
        return self._store

    @property
    def catalog(self) -> FeatureCatalog:
        return self._catalog

    async def get_features(
        self,
        view_id: str,
        entity_ids: Sequence[str],
        purpose: str | None,
        *,
        principal: Principal,
        version: int | None = None,
        request_id: str | None = None,
    ) -> dict[str, FeatureRow]:
        """The features of each of ``entity_ids`` (keys in the order asked, repeats once).

        Raises:
            Forbidden: no ``feature.read``; or, from the data access layer, the purpose may
                not read the view's categories, consent is missing or withdrawn, policy
                refuses (``PurposeRequired``, ``PurposeNotAllowed``, ``ConsentRequired``...).
            NotFound: no such view, or a subject not in the caller's tenant.
            InvalidRequest: no entity, more than :data:`MAX_ENTITIES`, a malformed subject
                id, or an unknown purpose.
        """
        self._authorizer.authorize(principal, ACTION, Resource(kind=RESOURCE_KIND))
        view = find_view(self._catalog, view_id, version)
        resource = Resource(kind=RESOURCE_KIND, id=view.id, tenant_id=principal.tenant_id)
        self._authorizer.authorize(principal, ACTION, resource)
        if not purpose:
            raise PurposeRequired(
                detail="declare why the features are read: X-Ombud-Purpose (e.g. credit_scoring)"
            )
        wanted = _checked_ids(view, entity_ids)
        if view.entity == SUBJECT:
            await self._data_access.check_many(
                principal, subject_ids=wanted, purpose=purpose,
                categories=view.data_categories, request_id=request_id,
            )  # fmt: skip
        records = await self._store.read(principal.tenant_id, view.id, wanted)
        now = self._clock.now()
        rows = {e: serve(view, e, records.get(e), now) for e in wanted}
        for row in rows.values():
            result = "stale" if row.stale else "hit" if row.found else "missing"
            self._metrics.feature_online_reads.labels(view=view.id, result=result).inc()
        return rows


def _checked_ids(view: FeatureView, entity_ids: Sequence[str]) -> list[str]:
    if not 1 <= len(entity_ids) <= MAX_ENTITIES:
        message = f"ask for 1 to {MAX_ENTITIES} entities"
        raise InvalidRequest(
            detail=message, errors=[FieldError(("body", "entity_ids"), message, "too_long")]
        )
    errors = [
        FieldError(("body", "entity_ids", i), _id_problem(view, e), "value_error")
        for i, e in enumerate(entity_ids)
        if _id_problem(view, e)
    ]
    if errors:
        raise InvalidRequest(detail="malformed entity ids", errors=errors)
    return list(dict.fromkeys(entity_ids))


def _id_problem(view: FeatureView, entity_id: str) -> str:
    if view.entity == SUBJECT and SUBJECT_ID.fullmatch(entity_id) is None:
        return "a subject id is sub_ and 32 lowercase hex digits"
    if not 1 <= len(entity_id) <= 200:
        return "an entity id has 1 to 200 characters"
    return ""
