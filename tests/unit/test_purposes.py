"""The purposes catalog: the shipped default loads, and a catalog with a mistake is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ombud.privacy.purposes import LawfulBasis, default_purposes_file, load_catalog


def _write(tmp_path: Path, catalog: object) -> Path:
    path = tmp_path / "purposes.yaml"
    path.write_text(yaml.safe_dump(catalog), encoding="utf-8")
    return path


def _minimal() -> dict[str, object]:
    return {
        "categories": {"identity": {"description": "who", "retention_days": 30}},
        "purposes": {
            "support": {
                "description": "helping the subject",
                "lawful_basis": "contract",
                "categories": ["identity"],
                "retention_days": 30,
            }
        },
    }


def test_the_shipped_catalog_loads_with_the_documented_purposes() -> None:
    catalog = load_catalog()
    assert {"credit_scoring", "fraud_detection", "marketing", "model_training"} <= set(
        catalog.purposes
    )
    assert set(catalog.categories) == {"identity", "contact", "financial", "behavioural"}
    credit = catalog.purposes["credit_scoring"]
    assert credit.lawful_basis is LawfulBasis.CONSENT
    assert credit.needs_consent
    fraud = catalog.purposes["fraud_detection"]
    assert fraud.lawful_basis is LawfulBasis.LEGITIMATE_INTEREST
    assert not fraud.needs_consent
    assert "contact" not in catalog.purposes["credit_scoring"].categories
    assert default_purposes_file().is_file()


def test_a_catalog_file_replaces_the_default(tmp_path: Path) -> None:
    catalog = load_catalog(_write(tmp_path, _minimal()))
    assert list(catalog.purposes) == ["support"]
    assert catalog.purpose("support") is not None
    assert catalog.purpose("marketing") is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("purposes", "support", "colour"), "blue"),  # unknown key
        (("categories", "identity", "owner"), "me"),  # unknown key in a category
        (("purposes", "support", "lawful_basis"), "because"),  # not a GDPR Art. 6 basis
        (("purposes", "support", "categories"), ["identity", "health"]),  # undefined category
        (("purposes", "support", "categories"), []),  # reads nothing
        (("purposes", "support", "retention_days"), 0),
    ],
)
def test_a_catalog_with_a_mistake_is_refused(
    tmp_path: Path, path: tuple[str, ...], value: object
) -> None:
    catalog = _minimal()
    target: dict[str, object] = catalog
    for key in path[:-1]:
        nested = target[key]
        assert isinstance(nested, dict)
        target = nested
    target[path[-1]] = value
    with pytest.raises(ValueError, match="validation error|undefined categories"):
        load_catalog(_write(tmp_path, catalog))


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "purposes.yaml"
    path.write_text("purposes: [unclosed", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_catalog(path)
