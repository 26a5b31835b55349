"""Settings: the one place that reads the environment.

Every option has an ``OMBUD_`` variable; nested groups use ``__`` (``OMBUD_DATABASE__URL``).
Secrets are ``SecretStr`` so they never reach logs or reprs. Outside ``dev`` the built-in demo
secrets are refused, so a production deployment cannot start with a value printed in the docs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ombud.jobs.schedules import validate_cron

DEMO_API_KEY_PEPPER = "ombud-demo-pepper-not-for-production"


class Environment(StrEnum):
    DEV = "dev"
    PROD = "prod"


class DatabaseSettings(BaseModel):
    """Where state lives. SQLite by default; a ``postgresql://`` URL selects PostgreSQL."""

    url: SecretStr = SecretStr("sqlite:///./var/ombud.db")
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    command_timeout_s: float = Field(default=30.0, gt=0)
    """PostgreSQL: longest wait for a connection, and for one statement."""
    echo: bool = False


class RedisSettings(BaseModel):
    """Shared fast state. Unset means embedded (in-process) alternatives are used."""

    url: SecretStr | None = None


class SecuritySettings(BaseModel):
    api_key_pepper: SecretStr = SecretStr(DEMO_API_KEY_PEPPER)
    """Server-side secret mixed into API-key digests (HMAC-SHA256), so a stolen table is useless."""
    api_key_cache_ttl_s: float = Field(default=0.0, ge=0, le=300)
    """Reuse a verified API key's principal for this long (0: look every key up). Revocations
    made in the same process apply at once; others within this many seconds."""


class ServingSettings(BaseModel):
    artifact_dir: Path = Path("var/artifacts")
    inference_threads: int = Field(default=4, ge=1, le=64)
    """Worker threads for model inference, which never runs on the event loop."""
    version_cache_ttl_s: float = Field(default=5.0, ge=0)
    """How long a model name's approved version is cached; approvals apply within this time."""
    batching: bool = True
    """Score concurrent single-row calls of one model version as one vectorized batch."""
    max_batch_size: int = Field(default=32, ge=1, le=4096)
    """Most rows in one batch."""
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    """How long a batch waits for more rows after its first one, if it is not yet full."""
    max_queue_delay_ms: float = Field(default=50.0, gt=0, le=60_000)
    """A row queued longer than this is refused (503 ``overloaded``) rather than run late."""
    max_queue_rows: int = Field(default=1024, ge=1, le=1_000_000)
    """Most rows queued per model version; past it new rows are refused at once (503)."""
    max_loaded_models: int = Field(default=8, ge=1, le=1024)
    """Most model versions kept in memory; the least recently used one is unloaded first."""
    require_signatures: bool = True
    """Refuse to load an artifact without a signature by a trusted key (docs/artifacts.md)."""
    signing_public_keys: list[Path] = []
    """Trusted public keys (PEM, EC P-256/384/521); several while a key rotates (JSON list)."""
    signing_private_key: Path | None = None
    """The key new artifacts are signed with; only where artifacts are published (CLI, seed)."""
    artifact_store: Literal["local", "s3"] = "local"
    """Where artifacts live: files under ``artifact_dir``, or an S3-compatible bucket."""
    s3_bucket: str | None = None
    """The bucket of the ``s3`` store; credentials come from boto3's standard chain."""
    s3_prefix: str = Field(default="", pattern=r"^([A-Za-z0-9_\-.]+/)*$")
    """Key prefix inside the bucket, empty or ending in ``/`` (e.g. ``ombud/artifacts/``)."""
    s3_endpoint_url: str | None = None
    """An S3-compatible endpoint (MinIO, Ceph, ...); unset: AWS S3."""
    s3_region: str | None = None
    mode: Literal["local", "remote"] = "local"
    """Where models run: in this process, or on an ``ombud inference-server`` (``remote``)."""
    inference_url: str | None = None
    """The inference server's base URL (``remote`` mode), e.g. ``http://10.0.0.7:8100``."""
    inference_token: SecretStr | None = None
    """Bearer token shared by gateway and inference server; required outside dev mode."""
    inference_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """Longest one call to the inference server may take; past it the model is unavailable."""
    inference_pool_size: int = Field(default=100, ge=1, le=10_000)
    """Connections the gateway keeps open to the inference server."""
    inference_host: str = "127.0.0.1"
    inference_port: int = Field(default=8100, ge=0, le=65535)
    """Where ``ombud inference-server`` listens unless ``--host``/``--port`` say otherwise."""

    @model_validator(mode="after")
    def _s3_complete(self) -> Self:
        if self.artifact_store == "s3" and not self.s3_bucket:
            raise ValueError("OMBUD_SERVING__ARTIFACT_STORE=s3 needs OMBUD_SERVING__S3_BUCKET")
        return self

    @model_validator(mode="after")
    def _remote_complete(self) -> Self:
        url = (self.inference_url or "").lower()
        if self.mode == "remote" and not url.startswith(("http://", "https://")):
            raise ValueError(
                "OMBUD_SERVING__MODE=remote needs OMBUD_SERVING__INFERENCE_URL (an http(s) URL)"
            )
        return self


class CryptoSettings(BaseModel):
    """Key management: envelope encryption under a key-encryption key from a key provider."""

    provider: Literal["local", "vault"] = "local"
    keyring_path: Path = Path("var/keyring.json")
    """The local key provider's keyring file (key-encryption keys by version); created in dev."""
    data_key_cache_size: int = Field(default=1024, ge=0)
    data_key_cache_ttl_s: float = Field(default=300.0, ge=0)
    vault_url: str | None = None
    """Vault's address, e.g. ``https://vault.internal:8200``; plain http only to loopback in dev."""
    vault_token: SecretStr | None = None
    """The Vault token; its policy needs the transit paths listed in docs/key-management.md."""
    vault_mount: str = Field(default="transit", pattern=r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
    vault_key_name: str = Field(default="ombud", pattern=r"^[A-Za-z0-9_\-.]+$")
    vault_namespace: str | None = None
    """Vault Enterprise namespace (``X-Vault-Namespace``); unset for the root namespace."""
    vault_ca_bundle: Path | None = None
    """PEM bundle of the CAs that sign Vault's certificate; unset: the system trust store."""
    vault_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """Longest one Vault request may take (connect, then each read) before it counts as down."""

    @model_validator(mode="after")
    def _vault_complete(self) -> Self:
        if self.provider == "vault" and (not self.vault_url or self.vault_token is None):
            raise ValueError(
                "OMBUD_CRYPTO__PROVIDER=vault needs OMBUD_CRYPTO__VAULT_URL and "
                "OMBUD_CRYPTO__VAULT_TOKEN"
            )
        return self


class JobsSettings(BaseModel):
    """The durable job runner."""

    embedded_worker: bool = True
    """Run a worker inside the server process (embedded default); off with ``ombud worker``."""
    poll_interval_s: float = Field(default=1.0, gt=0)
    """How long an idle worker waits before looking for due jobs again."""
    lease_s: float = Field(default=60.0, gt=0)
    """How long a claimed job stays a worker's without a heartbeat; heartbeats come every third."""
    max_attempts: int = Field(default=5, ge=1)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_max_s: float = Field(default=600.0, gt=0)
    concurrency: int = Field(default=4, ge=1)
    """Jobs one worker runs at once."""
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    """On stop, how long running jobs may finish before they are handed back to the queue."""


class RateLimitSettings(BaseModel):
    """Request and cost limits. Rates are per second; bursts are how many may come at once."""

    enabled: bool = True
    per_key_rate: float = Field(default=50.0, gt=0)
    per_key_burst: int = Field(default=100, ge=1)
    per_tenant_rate: float = Field(default=500.0, gt=0)
    per_tenant_burst: int = Field(default=1000, ge=1)
    per_ip_rate: float = Field(default=100.0, gt=0)
    per_ip_burst: int = Field(default=200, ge=1)
    per_model_rate: float = Field(default=1000.0, gt=0)
    per_model_burst: int = Field(default=2000, ge=1)
    max_concurrent_per_key: int = Field(default=32, ge=1)
    redis_failure_mode: Literal["fail_closed", "local_fallback"] = "local_fallback"
    redis_timeout_s: float = Field(default=0.5, gt=0)
    """Longest a check waits for Redis before the failure mode applies."""
    redis_probe_interval_s: float = Field(default=1.0, ge=0)
    """After a Redis failure, checks skip Redis for this long, then one tries it again."""
    trusted_proxies: list[str] = []
    """CIDRs of proxies whose forwarding header is believed; empty: the peer address is used."""
    client_ip_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    """The header the trusted proxies write the client address into (RFC 7239 ``forwarded``)."""


class GatewaySettings(BaseModel):
    """The request path: which stages each route runs, and its limits."""

    chains: dict[str, list[str]] = {}
    """Per-route stage lists replacing the defaults, e.g.
    ``{"model.predict": ["authenticate", "context", ...]}`` (JSON in ``OMBUD_GATEWAY__CHAINS``)."""
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_in_flight: int = Field(default=512, ge=1)
    """Calls in flight per process past which new ones are shed with 503."""


class OidcSettings(BaseModel):
    """Bearer JWTs from an OpenID Connect provider; off unless ``issuer`` and ``jwks_url`` set."""

    issuer: str | None = None
    audience: list[str] = []
    """A token is accepted when its ``aud`` holds one of these; required when enabled."""
    jwks_url: str | None = None
    algorithms: list[str] = ["RS256", "ES256", "PS256", "EdDSA"]
    leeway_s: float = Field(default=30.0, ge=0, le=300)
    jwks_cache_ttl_s: float = Field(default=3600.0, gt=0)
    jwks_min_refetch_interval_s: float = Field(default=30.0, ge=0)
    """Floor between two key-set fetches, so tokens with made-up key ids cannot flood the IdP."""
    jwks_fetch_timeout_s: float = Field(default=5.0, gt=0, le=30)
    jwks_max_bytes: int = Field(default=256 * 1024, ge=1024, le=4 * 1024 * 1024)
    max_token_bytes: int = Field(default=8192, ge=512, le=65536)
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"
    client_id_claims: list[str] = ["client_id", "azp"]
    """A token whose ``sub`` equals one of these claims is a client's own (service) token."""
    service_claim: str | None = None
    service_claim_values: list[str] = []
    """A token whose ``service_claim`` holds one of these values is a service (e.g. ``gty`` =
    ``client-credentials``, or ``idtyp`` = ``app``)."""

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        # Asymmetric signatures only: a shared-secret (HS*) algorithm next to public keys from a
        # key set is how key-confusion attacks work, and ``none`` is no signature at all.
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
        allowed |= {"ES256", "ES384", "ES512", "EdDSA"}
        refused = [alg for alg in value if alg not in allowed]
        if refused or not value:
            raise ValueError(
                f"OMBUD_OIDC__ALGORITHMS: {refused or 'empty'} refused; allowed: {sorted(allowed)}"
            )
        return value

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.enabled and not self.audience:
            raise ValueError("OMBUD_OIDC__AUDIENCE must be set when OIDC is enabled")
        if self.jwks_url and not self.jwks_url.lower().startswith(("https://", "http://")):
            raise ValueError("OMBUD_OIDC__JWKS_URL must be an http(s) URL")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.jwks_url)


class GuardSettings(BaseModel):
    """Input and output guards (stages ``guards.input`` and ``guards.output``)."""

    injection: Literal["block", "flag", "off"] = "block"
    """What a prompt-injection score past the block threshold does (past the flag threshold the
    call is always flagged unless this is ``off``)."""
    injection_block_threshold: float = Field(default=0.6, ge=0, le=1)
    injection_flag_threshold: float = Field(default=0.35, ge=0, le=1)
    input_pii: Literal["redact", "flag", "block", "off"] = "flag"
    output_pii: Literal["redact", "flag", "block", "off"] = "redact"
    blocked_pii_categories: list[str] = []
    """PII categories whose presence in an output blocks it whatever ``output_pii`` says."""
    max_output_chars: int = Field(default=100_000, ge=1)


class LlmSettings(BaseModel):
    """The LLM gateway: catalog, upstream client, cache, budgets and token limits."""

    catalog_file: Path | None = None
    """Providers, deployments, aliases and routing (YAML or JSON); unset: built-in local models."""
    pool_size: int = Field(default=256, ge=1)
    """Connections the one shared upstream client keeps (all providers together)."""
    pool_size_per_host: int = Field(default=0, ge=0)
    """Per upstream host; 0: no per-host cap beyond ``pool_size``."""
    cache_enabled: bool = True
    cache_ttl_s: float = Field(default=300.0, gt=0)
    cache_max_entries: int = Field(default=2048, ge=0)
    """In-process LRU size (0 turns the first tier off)."""
    cache_max_entry_bytes: int = Field(default=256 * 1024, ge=1024)
    cache_redis: bool = True
    """Use Redis as the second tier when ``OMBUD_REDIS__URL`` is set."""
    tpm_per_key: int | None = Field(default=None, ge=1)
    """Tokens per minute per API key (estimated before the call); unset: no token limit."""
    tpm_per_tenant: int | None = Field(default=None, ge=1)
    default_max_output_tokens: int = Field(default=1024, ge=1)
    """Output tokens reserved against budgets and TPM when a request sets no ``max_tokens``."""


class PolicySettings(BaseModel):
    """Policy as code (Rego bundles evaluated in-process)."""

    bundle_dir: Path | None = None
    """The bundle folder; unset: the default bundle shipped with ombud."""
    reload_interval_s: float = Field(default=5.0, ge=0)
    """At most this often the bundle's files are checked for changes and a new version loaded."""
    decision_cache_size: int = Field(default=4096, ge=0)
    """Decisions remembered per (bundle version, entrypoint, input digest); 0 turns it off.
    Bundles calling clock, random or network built-ins are never cached."""


class FlagSettings(BaseModel):
    """Feature flags (``/v1/flags``) and the ``feature.flag`` stage."""

    ttl_s: float = Field(default=5.0, gt=0, le=3600)
    """Longest the in-memory flag snapshot is used before it is reloaded: a change made in
    another process applies within this time (in the process that made it, at once)."""


class DeploymentSettings(BaseModel):
    """Rollouts (``/v1/deployments``): routing cache, shadow mirroring, the rollback monitor."""

    cache_ttl_s: float = Field(default=5.0, ge=0, le=3600)
    """How long a model's active deployment is cached per process; a rollback, promotion or
    percentage change made elsewhere applies within this time (in the process that made it,
    at once)."""
    shadow_concurrency: int = Field(default=2, ge=1, le=64)
    """Candidate scorings of shadow deployments run at once, in threads of their own (never
    the inference pool that answers calls)."""
    shadow_queue: int = Field(default=64, ge=0, le=100_000)
    """Mirrors waiting for a shadow slot; past it a mirror is dropped and counted."""
    shadow_timeout_s: float = Field(default=2.0, gt=0, le=600)
    """A mirror whose candidate takes longer than this to load and score is recorded as a
    ``timeout`` error instead of a score."""


class OutcomeSettings(BaseModel):
    """Outcomes (ground truth) and the KPIs computed from them."""

    kpi_max_rows: int = Field(default=100_000, ge=1, le=10_000_000)
    """Labelled predictions scored per KPI request or gauge refresh (the newest); past it the
    answer says ``truncated`` (counts still cover the whole window)."""
    kpi_windows: list[str] = ["1h", "24h", "7d", "30d"]
    """Trailing windows the ``outcomes.kpis`` job exports as ``ombud_model_kpi`` gauges
    (``<n>m``, ``<n>h`` or ``<n>d``, at most 400 days)."""

    @field_validator("kpi_windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        minutes = {"m": 1, "h": 60, "d": 1440}
        for window in value:
            match = re.fullmatch(r"([1-9][0-9]{0,3})([mhd])", window)
            if match is None or int(match[1]) * minutes[match[2]] > 400 * 1440:
                raise ValueError(f"{window!r} is not a window such as 1h, 24h, 7d or 30d")
        return value


class PrivacySettings(BaseModel):
    """Data subjects, their vault, consents and the purposes their data may be used for."""

    purposes_file: Path | None = None
    """The purposes catalog (YAML or JSON, docs/privacy.md); unset: the one shipped with ombud."""
    regions: list[str] = ["eu"]
    """Regions a data subject may be created in (``POST /v1/subjects``)."""
    lookup_secret: SecretStr | None = None
    """Key of the HMAC that indexes subjects' external ids; unset: the API-key pepper. Changing
    it makes existing external ids unfindable."""
    region_databases: dict[str, SecretStr] = {}
    """Regions whose subjects' data lives in a database of its own (region → database URL, as
    ``OMBUD_DATABASE__URL``); subjects of a region not listed keep theirs in the main database.
    Each must be one of ``regions``."""
    retention_cron: str = "30 3 * * *"
    """When the ``privacy.retention`` purge runs (five-field cron, UTC; default nightly at
    03:30)."""

    @field_validator("retention_cron")
    @classmethod
    def _retention_cron_valid(cls, value: str) -> str:
        return validate_cron(value)

    @model_validator(mode="after")
    def _regions_known(self) -> PrivacySettings:
        if not self.regions or len(set(self.regions)) != len(self.regions):
            raise ValueError("privacy.regions must list at least one region, each once")
        unknown = sorted(set(self.region_databases) - set(self.regions))
        if unknown:
            raise ValueError(f"privacy.region_databases names regions not in regions: {unknown}")
        return self


class FeatureSettings(BaseModel):
    """The feature store: declared feature views, event ingestion and historical retrieval."""

    views_dir: Path = Path("features")
    """Directory of the feature-view declarations (``*.yaml``, docs/features.md); relative to
    the working directory. A missing directory declares nothing."""
    max_clock_skew_s: float = Field(default=300.0, ge=0, le=86400)
    """How far in the future an ingested event's timestamp may lie (clocks differ)."""
    historical_max_events: int = Field(default=500_000, ge=1, le=50_000_000)
    """Most events one historical request may read; past it the request is refused (422)."""
    online_store: Literal["auto", "redis", "database"] = "auto"
    """Where materialized features are served from: ``redis`` (needs ``OMBUD_REDIS__URL``),
    ``database`` (the ``online_features`` table), or ``auto``: Redis when its URL is set."""
    materialize_batch: int = Field(default=500, ge=1, le=10_000)
    """Entities computed and written per step of a materialization run."""


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    body_timeout_s: float = Field(default=15.0, gt=0)
    """Longest a client may take to send a request body; slower bodies get 408."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    """Serve HTTPS with this certificate chain and key (PEM)."""
    hsts: bool | None = None
    """Send Strict-Transport-Security; default: when serving TLS. Set true behind a TLS proxy."""
    internal_host: str = "127.0.0.1"
    internal_port: int | None = Field(default=None, ge=0, le=65535)
    """A second listener for /metrics and health; when set, /metrics leaves the public one."""

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both OMBUD_SERVER__TLS_CERT_FILE and OMBUD_SERVER__TLS_KEY_FILE")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


class NetworkSettings(BaseModel):
    """Outbound calls (identity providers, key providers, model providers): where they may go."""

    allowed_hosts: list[str] = []
    """Host names or IP addresses ombud may call; anything else is refused (no SSRF)."""
    allow_private_networks: bool = False
    """Allow allowed hosts that resolve to private, loopback or link-local addresses."""
    allowed_schemes: list[str] = ["https"]


class Settings(BaseSettings):
    """All of ombud's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="OMBUD_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    env: Environment = Environment.DEV
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    security: SecuritySettings = SecuritySettings()
    serving: ServingSettings = ServingSettings()
    server: ServerSettings = ServerSettings()
    crypto: CryptoSettings = CryptoSettings()
    jobs: JobsSettings = JobsSettings()
    ratelimit: RateLimitSettings = RateLimitSettings()
    gateway: GatewaySettings = GatewaySettings()
    oidc: OidcSettings = OidcSettings()
    network: NetworkSettings = NetworkSettings()
    guards: GuardSettings = GuardSettings()
    policy: PolicySettings = PolicySettings()
    llm: LlmSettings = LlmSettings()
    flags: FlagSettings = FlagSettings()
    deployments: DeploymentSettings = DeploymentSettings()
    outcomes: OutcomeSettings = OutcomeSettings()
    privacy: PrivacySettings = PrivacySettings()
    features: FeatureSettings = FeatureSettings()

    @field_validator("env", mode="before")
    @classmethod
    def _lower_env(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_demo_secrets(self) -> Self:
        if self.env is not Environment.DEV:
            if self.security.api_key_pepper.get_secret_value() == DEMO_API_KEY_PEPPER:
                raise ValueError(
                    "OMBUD_SECURITY__API_KEY_PEPPER is the demo value; set a secret of your own "
                    "outside dev mode"
                )
            if len(self.security.api_key_pepper.get_secret_value()) < 32:
                raise ValueError("OMBUD_SECURITY__API_KEY_PEPPER must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _https_for_keys(self) -> Self:
        # Whoever can tamper with a plain-http key set can mint accepted tokens.
        jwks = self.oidc.jwks_url
        if self.env is not Environment.DEV and jwks and not jwks.lower().startswith("https://"):
            raise ValueError("OMBUD_OIDC__JWKS_URL must be https:// outside dev mode")
        return self

    @model_validator(mode="after")
    def _inference_token(self) -> Self:
        # Checked for every mode: the inference server itself runs with mode ``local``.
        token = self.serving.inference_token
        if self.env is Environment.DEV:
            return self
        if token is not None and len(token.get_secret_value()) < 32:
            raise ValueError("OMBUD_SERVING__INFERENCE_TOKEN must be at least 32 characters")
        if self.serving.mode == "remote" and token is None:
            raise ValueError("OMBUD_SERVING__MODE=remote needs OMBUD_SERVING__INFERENCE_TOKEN")
        return self

    @property
    def is_dev(self) -> bool:
        return self.env is Environment.DEV


def environment() -> Mapping[str, str]:
    """The process environment, for the few places that expand ``${VAR}`` references (the LLM
    catalog) or take a secret from a named variable (``--from-env``): read here only."""
    return os.environ
