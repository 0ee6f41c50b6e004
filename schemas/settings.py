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
from typing import Any, Self

from pydantic import ValidationError
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsError

__all__ = ["KepSettings", "settings_problems"]

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
        f"{prefix}{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_input=False)
    )
