"""Settings: every variable of the runtime contract, validated once at start-up.

Values come from the environment, then from `.env` in the working directory. A missing or
malformed value stops the start with one line naming the variable (see `load_settings`).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_URL = re.compile(r"^https?://[^\s/]+(/[^\s]*)?$")


class SettingsError(Exception):
    """One line for the operator: which variable, and what it expects."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)

    lark_app_id: str = Field(min_length=1)
    lark_app_secret: SecretStr
    lark_verification_token: SecretStr
    lark_encrypt_key: SecretStr | None = None
    lark_domain: str = "https://open.larksuite.com"
    lark_timestamp_window: int = Field(300, ge=1, description="seconds of clock skew accepted on signed deliveries")
    lark_max_body_bytes: int = Field(1_048_576, ge=1024)

    ghl_api_base: str = "https://services.leadconnectorhq.com"
    ghl_api_version: str = "2021-07-28"
    ghl_private_token: SecretStr | None = None
    ghl_location_id: str | None = None
    ghl_client_id: str | None = None
    ghl_client_secret: SecretStr | None = None
    ghl_authorize_url: str = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation"
    public_base_url: str | None = None

    database_url: str = "sqlite:///./data/bot.db"
    bot_secret_key: SecretStr | None = None

    default_timezone: str = "UTC"
    digest_admins: str = Field("", description="comma-separated open_ids allowed to change digests in any chat")
    audit_export_token: SecretStr | None = None
    snapshot_interval_seconds: int = Field(3600, ge=60)
    stats_retention_days: int = Field(400, ge=1)
    scheduler_enabled: bool = Field(True, description="run periodic jobs (snapshots, digests); tests tick by hand")
    digest_grace_seconds: int = Field(3 * 3600, ge=300, description="a digest missed by less than this is caught up")
    tag_cache_ttl_seconds: int = Field(600, ge=0)
    log_level: str = "INFO"

    @field_validator("lark_app_secret", "lark_verification_token")
    @classmethod
    def _not_empty(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().strip():
            raise ValueError("must not be empty (an empty token would accept any delivery)")
        return v

    @field_validator("lark_domain", "ghl_api_base", "ghl_authorize_url", "public_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not _URL.match(v):
            raise ValueError("expected an http(s) URL such as https://example.com")
        return v.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str) -> str:
        if not v.startswith("sqlite:///"):
            raise ValueError("expected sqlite:///path/to/bot.db")
        return v

    @field_validator("default_timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("expected an IANA time zone such as Asia/Shanghai") from exc
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
        return v.upper()

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if bool(self.ghl_private_token) != bool(self.ghl_location_id):
            missing = "GHL_LOCATION_ID" if self.ghl_private_token else "GHL_PRIVATE_TOKEN"
            raise ValueError(f"{missing}: GHL_PRIVATE_TOKEN and GHL_LOCATION_ID go together")
        if self.oauth_enabled:
            if not self.public_base_url:
                raise ValueError("PUBLIC_BASE_URL: required with GHL_CLIENT_ID (the OAuth redirect is built from it)")
            if not self.bot_secret_key:
                raise ValueError("BOT_SECRET_KEY: required with GHL_CLIENT_ID (stored tokens are encrypted with it)")
        elif bool(self.ghl_client_id) != bool(self.ghl_client_secret):
            raise ValueError("GHL_CLIENT_SECRET: GHL_CLIENT_ID and GHL_CLIENT_SECRET go together")
        return self

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.ghl_client_id and self.ghl_client_secret)

    @property
    def oauth_redirect_uri(self) -> str:
        return f"{self.public_base_url}/oauth/ghl/callback"

    @property
    def digest_admin_ids(self) -> frozenset[str]:
        return frozenset(x.strip() for x in self.digest_admins.split(",") if x.strip())


def describe_error(exc: ValidationError) -> str:
    """First problem as one line: `LARK_APP_ID: required` / `PORT: expected …`."""
    err = exc.errors()[0]
    loc = "_".join(str(p) for p in err["loc"]).upper()
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "required (set it in the environment or .env)"
    if not loc:  # model-level validator: the message names the variable itself
        return msg
    return f"{loc}: {msg}"


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_error(exc)) from None
