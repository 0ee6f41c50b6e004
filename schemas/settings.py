"""Where kep's settings come from, in one order for every settings class.

Highest first: **explicit values** (command-line options, arguments in Python) > **environment variables**
(``KEP_*``) > **the config file** (``kep run --config worker.yaml``) > **defaults**. ``KepSettings`` is the base
of every settings class (``KafkaSettings``, ``ConsumerSettings``, ``ProducerSettings``,
``SchemaRegistrySettings``); ``KepSettings.load(file_section, **explicit)`` builds one with its section of a
config file placed below the environment. Mappings merge key by key across the sources (a ``librdkafka`` key
set in the environment is added to those of the file; the same key takes the higher source's value).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

__all__ = ["KepSettings", "SchemaRegistrySettings", "SubjectStrategyName", "settings_problems"]

SubjectStrategyName = Literal["record_name", "topic_name", "topic_record_name"]

_FILE_SECTION: ContextVar[Mapping[str, Any] | None] = ContextVar("kep_settings_file_section", default=None)


class KepSettings(BaseSettings):
    """A settings class whose config-file values rank below the environment (see the module docstring)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        extra = cls.extra_env_sources(settings_cls)
        config_file = InitSettingsSource(settings_cls, dict(_FILE_SECTION.get() or {}))
        return (init_settings, *extra, env_settings, dotenv_settings, file_secret_settings, config_file)

    @classmethod
    def extra_env_sources(cls, settings_cls: type[BaseSettings]) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment sources of a subclass of its own, ranked above the plain ``KEP_*`` variables."""
        return ()

    @classmethod
    def load(cls, file_section: Mapping[str, Any] | None = None, /, **explicit: Any) -> Self:
        """Settings from ``explicit`` values, then the environment, then ``file_section`` (this class's part
        of a config file), then the defaults."""
        token = _FILE_SECTION.set(file_section)
        try:
            return cls(**explicit)
        finally:
            _FILE_SECTION.reset(token)


def settings_problems(exc: ValidationError | SettingsError, prefix: str = "") -> str:
    """One line for a settings error: ``field: reason; ...``, never the values given (they may be secrets)."""
    if isinstance(exc, SettingsError):  # a variable that does not parse (JSON of a mapping field)
        cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        return f"{exc}{cause}"
    return "; ".join(
        f"{prefix}{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors(include_input=False)
    )


class SchemaRegistrySettings(KepSettings):
    """How kep talks to a Confluent-compatible schema registry. Environment: ``KEP_SCHEMA_REGISTRY_*``.

    The URL itself is ``KEP_SCHEMA_REGISTRY_URL`` (``--registry-url``; the worker's ``schema_registry_url``).
    ``repr``, logs and errors never show the password or the token (``SecretStr``).
    """

    model_config = SettingsConfigDict(
        env_prefix="KEP_SCHEMA_REGISTRY_", frozen=True, extra="forbid", hide_input_in_errors=True
    )

    subject_strategy: SubjectStrategyName = Field(
        default="record_name",
        description="record_name: the record's full name (kep's default: a topic may carry several event "
        "types); topic_name: <topic>-value (Confluent's default); topic_record_name: <topic>-<full name>.",
    )
    auto_register: bool = Field(
        default=True,
        description="Register the newest local schema on first use. False: only look up its id (locked "
        "production registries); a schema that is not registered is an error naming the subject.",
    )
    username: str | None = Field(default=None, description="Basic auth user (Confluent Cloud: the API key).")
    password: SecretStr | None = Field(default=None, description="Basic auth password (the API secret).")
    bearer_token: SecretStr | None = Field(default=None, description="A static bearer token.")
    bearer_logical_cluster: str | None = Field(
        default=None, description="Confluent Cloud's registry cluster id (lsrc-...) sent with the token."
    )
    bearer_identity_pool: str | None = Field(default=None, description="Confluent Cloud identity pool id.")
    ssl_ca_location: str | None = Field(default=None, description="CA file or directory for https.")
    timeout_s: float = Field(default=10.0, gt=0, description="Per request.")
    max_retries: int = Field(default=1, ge=0, description="Retries of a failed request inside one lookup.")
    unknown_id_ttl_s: float = Field(
        default=60.0,
        ge=0,
        description="A schema id the registry does not have is not asked for again for this long.",
    )

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        if self.password is not None and not self.username:
            raise ValueError("password without username: set KEP_SCHEMA_REGISTRY_USERNAME too")
        if self.username and self.bearer_token is not None:
            raise ValueError("both basic auth (username) and a bearer token: choose one")
        return self

    def client_config(self, url: str) -> dict[str, Any]:
        """The confluent-kafka ``SchemaRegistryClient`` configuration for ``url``. Holds secrets in clear:
        hand it to the client, never to a log."""
        conf: dict[str, Any] = {
            "url": url,
            "timeout": self.timeout_s,
            "max.retries": self.max_retries,
            "retries.wait.ms": 100,
            "retries.max.wait.ms": 1000,
        }
        if self.username:
            password = self.password.get_secret_value() if self.password is not None else ""
            conf["basic.auth.user.info"] = f"{self.username}:{password}"
        if self.bearer_token is not None:
            conf["bearer.auth.credentials.source"] = "STATIC_TOKEN"
            conf["bearer.auth.token"] = self.bearer_token.get_secret_value()
            # confluent-kafka requires the field; registries other than Confluent Cloud ignore the header
            conf["bearer.auth.logical.cluster"] = self.bearer_logical_cluster or ""
            if self.bearer_identity_pool:
                conf["bearer.auth.identity.pool.id"] = self.bearer_identity_pool
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf
