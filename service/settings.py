"""Every setting of the service, read from the environment in one place."""

from __future__ import annotations

import base64
import re
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.keys import DerivedKeys
from service.limits import parse_limit

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def _comma_list(value: Any) -> Any:
    """`a, b` from the environment; a list or tuple passed in code is kept."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


# A well-known value that lets development start with no set-up; production refuses it.
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-change-me"  # noqa: S105


# The rate limits, each a `RATE_LIMIT_<NAME>` setting in the `limits` notation.
RATE_LIMIT_NAMES = (
    "sign_in_per_account",
    "sign_in_per_address",
    "sign_in_per_device",
    "account_create_per_address",
    "pin_issue_per_account",
    "verify_per_agent",
    "verify_per_account",
    "confirm_per_agent",
    "confirm_per_account",
)


class Settings(BaseSettings):
    """Settings from environment variables (names are the upper-case field names)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"

    # Stores. Unset in development means: start the embedded servers (see service/embedded.py).
    database_url: str | None = None
    redis_url: str | None = None
    redis_cluster: bool = False
    redis_key_prefix: str = Field(default="", max_length=64)
    data_dir: Path = Path(".support-pin")

    db_pool_min_size: int = Field(default=2, ge=1, le=100)
    db_pool_max_size: int = Field(default=10, ge=1, le=200)
    db_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    redis_pool_size: int = Field(default=64, ge=1, le=10_000)

    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)

    # Support PINs.
    pin_length: int = Field(default=6, ge=6, le=10)
    pin_ttl_seconds: int = Field(default=1800, ge=1, le=86_400)
    pin_max_attempts: int = Field(default=5, ge=1, le=10)
    account_max_failures: int = Field(default=20, ge=1, le=100)
    account_lock_seconds: int = Field(default=3600, ge=1, le=86_400)

    # Sign-in.
    session_ttl_seconds: int = Field(default=3600, ge=60, le=30 * 86_400)
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)

    # Two-factor sign-in (TOTP and recovery codes).
    mfa_totp_issuer: str = Field(default="Support PIN", min_length=1, max_length=64)
    mfa_token_ttl_seconds: int = Field(default=300, ge=30, le=900)
    mfa_token_max_attempts: int = Field(default=5, ge=1, le=10)
    # Consecutive wrong second-factor codes per account, across sign-ins (NIST: at most 100).
    mfa_account_max_failures: int = Field(default=20, ge=1, le=100)
    mfa_lock_seconds: int = Field(default=3600, ge=60, le=86_400)

    # Sign-in through the company's OpenID Connect provider (docs/identity.md); on when
    # OIDC_ISSUER is set. Its access tokens are then accepted on every user route as well.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid email profile"
    # The `aud` the provider's access tokens for this service carry; default OIDC_CLIENT_ID.
    oidc_audience: str | None = None
    oidc_display_name: str = Field(default="single sign-on", min_length=1, max_length=64)
    # Support PINs only for a session or token whose `amr` says a second factor was used.
    oidc_require_mfa: bool = False
    # False: sign-up and the password grant are refused; the pages offer the provider only.
    password_signin: bool = True

    # Support staff (docs/operations.md#staff). Their sessions end after at most 8 hours.
    staff_session_ttl_seconds: int = Field(default=8 * 3600, ge=300, le=8 * 3600)
    # Staff single sign-on through the company's workforce provider; on when all three are set.
    staff_oidc_issuer: str | None = None
    staff_oidc_client_id: str | None = None
    staff_oidc_client_secret: SecretStr | None = None
    staff_oidc_scopes: str = "openid email profile"
    # The ID token claim that lists the person's groups, and which group gives which role
    # (JSON, e.g. {"support-agents": "agent", "support-admins": "admin"}); highest role wins.
    staff_oidc_roles_claim: str = Field(default="groups", min_length=1, max_length=128)
    staff_oidc_role_map: dict[str, Literal["agent", "supervisor", "admin"]] = Field(
        default_factory=dict
    )
    staff_oidc_display_name: str = Field(default="single sign-on", min_length=1, max_length=64)
    # Where people reach this service (set-up links printed by the CLI point here).
    public_url: str = Field(default="http://localhost:8000", pattern=r"^https?://[^\s/?#]+$")

    # Against fake support calls: how long after a check the account page says Support is in
    # contact, and where notices of checks go (docs/operations.md#notices).
    contact_window_seconds: int = Field(default=900, ge=1, le=86_400)
    # How long an agent-started confirmation waits for the customer's answer.
    confirmation_ttl_seconds: int = Field(default=120, ge=1, le=600)
    # smtp://user:password@host:port or smtps://…; unset: each email is written to the log.
    smtp_url: SecretStr | None = None
    mail_from: str = Field(default="Support PIN <no-reply@localhost>", min_length=3, max_length=254)
    # Standard Webhooks: a POST of each notice, signed with WEBHOOK_SECRET (whsec_…).
    webhook_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    webhook_secret: SecretStr | None = None

    # Passkeys (WebAuthn): the relying party's id (the site's domain) and the pages' origin;
    # unset, both come from the host the request was made to.
    webauthn_rp_id: str | None = Field(default=None, pattern=r"^[a-z0-9.-]+$", max_length=253)
    webauthn_origin: str | None = Field(
        default=None, pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$"
    )
    webauthn_rp_name: str = Field(default="Support PIN", min_length=1, max_length=64)

    # HTTP.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # The HTTP edge `support-pin serve` enforces: the largest request head, the seconds a
    # connection gets to send one (and to stay idle between requests), and the requests one
    # worker process answers at once before it answers 503.
    http_max_head_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    http_head_timeout_seconds: int = Field(default=10, ge=1, le=300)
    http_max_concurrent_requests: int = Field(default=1000, ge=1, le=100_000)
    # Live event streams (open account pages) one worker process holds at once.
    http_max_streams: int = Field(default=10_000, ge=1, le=100_000)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Abuse resistance. Rate limits in the `limits` notation, counted in Redis so
    # they hold across processes; a 429 never counts as a PIN guess.
    rate_limit_sign_in_per_account: str = "10/minute"
    rate_limit_sign_in_per_address: str = "60/minute"
    # Sign-ins from a browser that signed in to the account before (its device cookie).
    rate_limit_sign_in_per_device: str = "10/minute"
    # Consecutive failed sign-ins per account from clients without its device cookie (and
    # per device cookie) before they are refused; the refusal ends SIGN_IN_LOCK_SECONDS
    # after the last failure, or when the owner signs in from a known device.
    sign_in_max_failures: int = Field(default=100, ge=1, le=100)
    sign_in_lock_seconds: int = Field(default=3600, ge=60, le=86_400)
    rate_limit_account_create_per_address: str = "20/hour"
    rate_limit_pin_issue_per_account: str = "10 per 10 minutes"
    rate_limit_verify_per_agent: str = "120/minute"
    rate_limit_verify_per_account: str = "30/minute"
    # Agent-started confirmations (number matching) per agent, and per account.
    rate_limit_confirm_per_agent: str = "120/minute"
    rate_limit_confirm_per_account: str = "3 per 10 minutes"
    # Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed; empty = the
    # socket peer is the client.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    # Strict-Transport-Security max-age; 0 = no header (set it when served over HTTPS only).
    hsts_seconds: int = Field(default=0, ge=0, le=2 * 365 * 86_400)
    # Front-end origins (comma-separated, e.g. https://app.example.com) allowed by CORS.
    cors_allow_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # Operations: log rendering. `auto` = JSON lines unless stderr is a terminal.
    log_format: Literal["auto", "json", "console"] = "auto"
    # /metrics on a listener of its own (on `serve --host`), or on the service's port for a
    # bearer of METRICS_TOKEN; with neither, the service's port serves it outside production.
    metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    metrics_token: SecretStr | None = None

    @field_validator("secret_key")
    @classmethod
    def _secret_key_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("SECRET_KEY must be at least 32 characters")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("METRICS_TOKEN must be at least 32 characters")
        return value

    @field_validator(*(f"rate_limit_{name}" for name in RATE_LIMIT_NAMES))
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        parse_limit(value)
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> Any:
        value = _comma_list(value)
        if isinstance(value, tuple | list):
            return tuple(ip_network(str(item), strict=False) for item in value)
        return value

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _origins_split(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("cors_allow_origins")
    @classmethod
    def _origins_exact(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            # An allow-list: exact scheme://host[:port], no wildcard, no path.
            if not _ORIGIN.match(origin):
                raise ValueError(f"CORS origin must look like https://host[:port]: {origin!r}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            encoded = secret.removeprefix("whsec_")
            try:
                raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except ValueError:
                raise ValueError("WEBHOOK_SECRET must be whsec_ and base64") from None
            if not secret.startswith("whsec_") or len(raw) < 24:
                raise ValueError("WEBHOOK_SECRET must be whsec_ and at least 24 base64 bytes")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^smtps?://[^\s/]+(/)?$", value.get_secret_value()):
            raise ValueError("SMTP_URL must look like smtp://user:password@host:port")
        return value

    @field_validator("mfa_totp_issuer")
    @classmethod
    def _issuer_fits_otpauth_label(cls, value: str) -> str:
        # The issuer is part of the otpauth:// label "Issuer:account", so ':' would split it.
        if ":" in value or value.strip() != value:
            raise ValueError("MFA_TOTP_ISSUER must not contain ':' or surrounding spaces")
        return value

    @field_validator("oidc_issuer", "staff_oidc_issuer")
    @classmethod
    def _issuer_is_a_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
            raise ValueError("OIDC_ISSUER must be an http(s) URL without query or fragment")
        return value

    @model_validator(mode="after")
    def _production_is_explicit(self) -> Settings:
        if self.environment == "production":
            if self.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY:
                raise ValueError("SECRET_KEY must be set to a random value in production")
            if not self.database_url or not self.redis_url:
                raise ValueError("DATABASE_URL and REDIS_URL must be set in production")
            for name in ("oidc_issuer", "staff_oidc_issuer"):
                issuer = getattr(self, name)
                if issuer and not issuer.startswith("https://"):
                    raise ValueError(f"{name.upper()} must be an https URL in production")
        if self.oidc_issuer and not (self.oidc_client_id and self.oidc_client_secret):
            raise ValueError("OIDC_ISSUER needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")
        if self.staff_oidc_issuer and not self.staff_sso_enabled:
            raise ValueError(
                "STAFF_OIDC_ISSUER needs STAFF_OIDC_CLIENT_ID and STAFF_OIDC_CLIENT_SECRET"
            )
        if not self.password_signin and not self.oidc_issuer:
            raise ValueError("PASSWORD_SIGNIN=false needs OIDC_ISSUER: nobody could sign in")
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("WEBHOOK_URL needs WEBHOOK_SECRET (whsec_…)")
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
        return self

    @property
    def staff_sso_enabled(self) -> bool:
        return bool(
            self.staff_oidc_issuer and self.staff_oidc_client_id and self.staff_oidc_client_secret
        )

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_issuer is not None

    @property
    def oidc_token_audience(self) -> str:
        return self.oidc_audience or self.oidc_client_id or ""

    @cached_property
    def keys(self) -> DerivedKeys:
        """Purpose-bound keys derived from SECRET_KEY."""
        return DerivedKeys.from_secret(self.secret_key.get_secret_value().encode())
