"""The processing record and the privacy-notice section as Markdown, for people.

Both are rendered from a :class:`~ombud.compliance.record.ProcessingRecord` only, so the
Markdown never says more (or other) than the JSON record it came from.
"""

from __future__ import annotations

from ombud.compliance.record import ModelEntry, ProcessingRecord, PurposeEntry
from ombud.privacy.purposes import LawfulBasis
from ombud.registry.schemas import LineageEntry

BASIS_IN_WORDS = {
    LawfulBasis.CONSENT: "you gave us your consent, which you may withdraw at any time",
    LawfulBasis.CONTRACT: (
        "it is necessary to perform our contract with you, or to take steps you asked for "
        "before entering into one"
    ),
    LawfulBasis.LEGAL_OBLIGATION: "the law requires us to",
    LawfulBasis.VITAL_INTEREST: "it is necessary to protect someone's life",
    LawfulBasis.PUBLIC_TASK: "it is necessary for a task carried out in the public interest",
    LawfulBasis.LEGITIMATE_INTEREST: (
        "it is necessary for our legitimate interests, which do not override your rights; "
        "you may object to it"
    ),
}
PREFERENCES_ROUTE = "PUT /v1/subjects/{id}/preferences"


def render_record(record: ProcessingRecord) -> str:
    """The whole Art. 30 record as one Markdown document."""
    lines = ["# Record of processing activities (GDPR Art. 30)", ""]
    lines += [f"Generated at {record.generated_at.isoformat()} from the configuration.", ""]
    lines += ["## Processing purposes", ""]
    for purpose in record.purposes:
        lines += _purpose(purpose)
    lines += ["## Data categories", "", "| category | description | retention (days) |"]
    lines += ["|---|---|---|"]
    lines += [
        f"| {c.name} | {c.description} | {c.retention_days} |" for c in record.data_categories
    ]
    lines += ["", "## Models and their training sources", ""]
    for model in record.models:
        lines += _model(model)
    if not record.models:
        lines += ["No models are registered.", ""]
    lines += ["## Feature views", ""] + _views(record) + [""]
    lines += ["## Recipients and processors", ""] + _recipients(record) + [""]
    lines += ["## Where subject data is stored (residency)", ""]
    lines += ["| region | store | backend | host |", "|---|---|---|---|"]
    lines += [
        f"| {loc.region} | {loc.store} | {loc.backend} | {loc.host or 'local file'} |"
        for loc in record.storage_locations
    ] + [""]
    lines += ["## Security measures (Art. 30(1)(g))", ""]
    lines += [f"- {m.statement}" for m in record.security_measures] + [""]
    lines += ["## Sources", ""]
    lines += [f"- {k}: {v}" for k, v in record.sources.model_dump(mode="json").items()]
    return "\n".join(lines) + "\n"


def _purpose(purpose: PurposeEntry) -> list[str]:
    return [
        f"### {purpose.name}",
        "",
        purpose.description,
        "",
        f"- Lawful basis: {purpose.lawful_basis.value} ({purpose.article})",
        f"- Data categories: {', '.join(purpose.categories)}",
        f"- Retention: {purpose.retention_days} days",
        f"- Recipients: {', '.join(purpose.recipients) or 'none'}",
        f"- Models: {', '.join(purpose.models) or 'none linked'}",
        "",
    ]


def _model(model: ModelEntry) -> list[str]:
    lines = [f"### {model.name}", "", f"- Owner: {model.owner or 'not stated'}"]
    if not model.approved_versions:
        return [*lines, "- No approved version.", ""]
    for version in model.approved_versions:
        lines += [
            f"- Version {version.version}: {version.intended_use or 'intended use not stated'}",
            f"  - Decisions: {' / '.join(version.decisions)}",
        ]
        lines += [f"  - Trained on: {_source(s)}" for s in version.training_sources] or [
            "  - Training sources: none recorded"
        ]
    return [*lines, ""]


def _source(entry: LineageEntry) -> str:
    text = entry.dataset_id
    if entry.time_range is not None:
        text += f" ({entry.time_range.from_.date()} to {entry.time_range.to.date()})"
    if entry.feature_view is not None:
        version = entry.feature_view_version
        text += f" via feature view {entry.feature_view}" + (f" v{version}" if version else "")
    return text


def _views(record: ProcessingRecord) -> list[str]:
    if not record.feature_views:
        return ["No feature views are declared."]
    lines = ["| view | entity | source event type | data categories | ttl (s) |"]
    lines += ["|---|---|---|---|---|"]
    return lines + [
        f"| {v.id} | {v.entity} | {v.source_event_type} | {', '.join(v.data_categories)} |"
        f" {v.ttl_s} |"
        for v in record.feature_views
    ]


def _recipients(record: ProcessingRecord) -> list[str]:
    lines = [
        f"- Processor {p.name} ({p.kind}): host {p.host or 'none'}, regions "
        f"{', '.join(p.regions) or 'not declared'}"
        for p in record.recipients.processors
    ] or ["- No external model provider is configured."]
    recipients = record.recipients.purpose_recipients
    return [*lines, f"- Purpose recipients: {', '.join(recipients) or 'none'}"]


def render_notice(record: ProcessingRecord) -> str:
    """The privacy-notice section: per purpose, in plain words, what, why, how long, to whom,
    and which automated decisions are made and how to contest or opt out of them."""
    lines = ["## How we use your data", ""]
    for purpose in record.purposes:
        lines += [
            f"### {purpose.description.rstrip('.')}",
            "",
            f"We use: {', '.join(purpose.categories)} data.",
            f"Why we may: {BASIS_IN_WORDS[purpose.lawful_basis]} ({purpose.article} GDPR).",
            f"How long we keep it: {_duration(purpose.retention_days)}.",
            f"Who receives it: {', '.join(purpose.recipients) or 'no one outside ombud'}.",
        ]
        if purpose.models:
            lines.append(f"Automated decisions: made with the models {', '.join(purpose.models)}.")
        lines.append("")
    lines += ["### Automated decisions and your rights", ""]
    decided = [m for m in record.models if m.approved_versions]
    lines += [
        f"- {m.name}: decides {' or '.join(m.approved_versions[-1].decisions)}." for m in decided
    ] or ["- No automated decisions are made."]
    lines += [
        "",
        "You have the right to ask for human review of any automated decision about you, to "
        "express your view and to contest it. You may opt out of automated decisions and of "
        f"processing based on consent or legitimate interest at any time ({PREFERENCES_ROUTE}).",
    ]
    return "\n".join(lines) + "\n"


def _duration(days: int) -> str:
    if days % 365 == 0:
        years = days // 365
        return f"{years} year{'s' if years > 1 else ''}"
    return f"{days} days"
