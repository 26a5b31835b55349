"""Model cards: one version's purpose, limits, data, quality, inputs and approval, rendered from
the registry (never written by hand, so the card cannot drift from what serves)."""

from __future__ import annotations

from ombud.registry.schemas import LineageEntry, ModelCard, TransitionRead, VersionRead


def build_card(
    version: VersionRead, owner: str, model_description: str, history: list[TransitionRead]
) -> ModelCard:
    return ModelCard(
        model=version.model, version=version.version, owner=owner,
        model_description=model_description, description=version.description,
        intended_use=version.intended_use, limitations=version.limitations,
        lineage=version.lineage, metrics=version.metrics, features=version.input_schema,
        serving=version.serving_config,
        artifact={"uri": version.artifact_uri, "sha256": version.sha256,
                  "format": version.format.value},
        approval=version.approval, history=history,
    )  # fmt: skip


def render_markdown(card: ModelCard) -> str:
    """The card as Markdown, for people (and for attaching to a review or an audit file)."""
    lines = [f"# Model card: {card.model} v{card.version}", ""]
    lines += [f"- Owner: {card.owner or 'not stated'}", f"- Status: {card.approval.status.value}"]
    lines += ["", card.model_description or "No description of the model.", ""]
    lines += _section("This version", card.description)
    lines += _section("Intended use", card.intended_use)
    lines += _section("Known limitations", card.limitations)
    lines += ["## Training data", ""] + _lineage(card.lineage) + [""]
    lines += ["## Evaluation metrics", ""]
    lines += [f"- {name}: {value:.4g}" for name, value in sorted(card.metrics.items())] or [
        "None recorded."
    ]
    lines += ["", "## Features", "", "| name | type | role | required |", "|---|---|---|---|"]
    lines += [
        f"| {f.name} | {f.type} | {'protected' if f.role == 'protected' else 'input'} |"
        f" {'yes' if f.required else 'no'} |"
        for f in card.features
    ]
    protected = [f.name for f in card.features if f.role == "protected"]
    lines += ["", f"Protected attributes (recorded for fairness monitoring, never given to the "
              f"model): {', '.join(protected) or 'none'}.", ""]  # fmt: skip
    serving = card.serving
    lines += [
        "## Serving", "",
        f"- Score: {serving.score_meaning}",
        f"- Threshold: {serving.threshold:g} (at or above: {serving.positive_decision}; "
        f"below: {serving.negative_decision})",
        f"- Tier: {serving.tier}",
        f"- Artifact: {card.artifact['format']} sha256 {card.artifact['sha256']}", "",
    ]  # fmt: skip
    lines += _approval(card)
    return "\n".join(lines).rstrip() + "\n"


def _section(title: str, text: str) -> list[str]:
    return [f"## {title}", "", text or "Not stated.", ""]


def _lineage(entries: list[LineageEntry]) -> list[str]:
    if not entries:
        return ["Not recorded."]
    rows = []
    for entry in entries:
        text = f"- {entry.dataset_id}"
        if entry.time_range is not None:
            span = entry.time_range
            text += f", {span.from_.date().isoformat()} to {span.to.date().isoformat()}"
        if entry.feature_view:
            version = f" v{entry.feature_view_version}" if entry.feature_view_version else ""
            text += f", feature view {entry.feature_view}{version}"
        rows.append(text)
    return rows


def _approval(card: ModelCard) -> list[str]:
    approval = card.approval
    lines = ["## Approval", ""]
    lines.append(f"- Submitted by: {approval.submitted_by or '-'}")
    decided = approval.decided_at.isoformat() if approval.decided_at else "-"
    lines.append(f"- Decided by: {approval.decided_by or '-'} at {decided}")
    lines.append(f"- Reason: {approval.reason or '-'}")
    lines += ["", "| at | action | from | to | by | reason |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {t.at.isoformat()} | {t.action} | {t.from_status.value if t.from_status else '-'} |"
        f" {t.to_status.value} | {t.actor} | {_cell(t.reason or '')} |"
        for t in card.history
    ]
    return lines


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")
