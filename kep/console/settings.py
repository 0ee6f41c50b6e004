"""``kep console`` settings: explicit options, then ``KEP_CONSOLE_*`` environment variables.

Secrets (the operator token and password, the key that signs sessions and CSRF tokens) are ``SecretStr``:
``repr``, ``str`` and logs never show them.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    """How the console listens, who may act, and how it reads the cluster.

    Read-only by default: without ``operator_token`` or ``operator_password`` nobody can replay anything.
    """

    model_config = SettingsConfigDict(env_prefix="KEP_CONSOLE_", frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to listen on (0.0.0.0: every interface).")
    port: int = Field(default=8090, ge=0, le=65535, description="HTTP port (0: any free port).")
    operator_token: SecretStr | None = Field(
        default=None, description="Token that grants the operator role (login form or 'Bearer' header)."
    )
    operator_user: str = Field(default="operator", min_length=1, description="Basic-auth operator user.")
    operator_password: SecretStr | None = Field(
        default=None, description="Basic-auth password of operator_user; unset: no basic auth."
    )
    secret_key: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        description="Signs operator sessions and CSRF tokens (default: random per process).",
    )
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0, description="How long an operator login lasts.")
    secure_cookies: bool = Field(default=False, description="Mark cookies Secure (serve over HTTPS).")
    database: Path = Field(
        default=Path(".kep/console.db"), description="SQLite file: dead-letter index and audit log."
    )
    group_filter: str | None = Field(
        default=None, description="Only consumer groups whose id matches this regex in full."
    )
    poll_interval_s: float = Field(default=2.0, gt=0, description="Seconds between lag polls.")
    lag_window_s: float = Field(default=120.0, gt=0, description="Status window of the lag monitor.")
    kafka_timeout_s: float = Field(
        default=10.0, gt=0, description="Bound on every broker request the console waits for."
    )
    page_size: int = Field(default=50, ge=1, le=1000, description="Dead letters per page.")
    registry_url: str | None = Field(
        default=None, description="Schema Registry URL (Confluent framing); unset: single-object encoding."
    )

    @field_validator("operator_token", "operator_password", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if value == "" or (isinstance(value, SecretStr) and value.get_secret_value() == ""):
            return None
        return value

    @field_validator("group_filter")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _strong_secrets(self) -> ConsoleSettings:
        for name in ("operator_token", "operator_password"):
            value: SecretStr | None = getattr(self, name)
            if value is not None and len(value.get_secret_value()) < 12:
                raise ValueError(f"{name} must be at least 12 characters")
        return self

    @property
    def operators_configured(self) -> bool:
        return self.operator_token is not None or self.operator_password is not None
