from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from ombud.config import Environment, SecuritySettings, Settings


def test_defaults_are_the_embedded_dev_setup() -> None:
    settings = Settings()
    assert settings.env is Environment.DEV
    assert settings.database.url.get_secret_value().startswith("sqlite:///")
    assert settings.redis.url is None
    assert settings.server.max_body_bytes == 1024 * 1024


def test_nested_values_come_from_ombud_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMBUD_DATABASE__URL", "postgresql://db.internal/ombud")
    monkeypatch.setenv("OMBUD_SERVER__PORT", "9001")
    monkeypatch.setenv("OMBUD_REDIS__URL", "redis://:hunter2@cache:6379/0")
    settings = Settings()
    assert settings.database.url.get_secret_value() == "postgresql://db.internal/ombud"
    assert settings.server.port == 9001
    assert "hunter2" not in repr(settings)


def test_production_refuses_the_demo_pepper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMBUD_ENV", "prod")
    with pytest.raises(ValidationError, match="demo value"):
        Settings()


def test_production_refuses_a_short_pepper() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(env=Environment.PROD, security=SecuritySettings(api_key_pepper=SecretStr("short")))


def test_production_accepts_a_real_pepper() -> None:
    settings = Settings(
        env=Environment.PROD, security=SecuritySettings(api_key_pepper=SecretStr("p" * 40))
    )
    assert not settings.is_dev


def test_production_refuses_a_plain_http_key_set() -> None:
    from ombud.config import OidcSettings

    with pytest.raises(ValidationError, match="https"):
        Settings(
            env=Environment.PROD,
            security=SecuritySettings(api_key_pepper=SecretStr("p" * 40)),
            oidc=OidcSettings(
                issuer="https://idp.example.com", audience=["ombud"],
                jwks_url="http://idp.example.com/jwks",
            ),
        )  # fmt: skip
