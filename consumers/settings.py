"""Worker settings: explicit arguments, then a YAML file, then ``KEP_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from kep.consumers.errors import ConfigError
from kep.topology.settings import KafkaSettings

Concurrency = Literal["partition", "key"]
AssignmentStrategy = Literal["cooperative-sticky", "range", "roundrobin"]
LogFormat = Literal["auto", "console", "json"]


class ConsumerSettings(BaseSettings):
    """How a ``kep run`` worker behaves. Every field can be set as ``KEP_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="KEP_", frozen=True, extra="forbid")

    group: str | None = Field(default=None, description="Override the app's consumer group id.")
    topology: Path | None = Field(default=None, description="Topology YAML (default: the shipped one).")
    schema_registry_url: str | None = Field(default=None, description="Confluent Schema Registry URL.")
    idempotency_store: str = Field(
        default="sqlite:///.kep/idempotency.db",
        description="memory://, sqlite:///path, redis://host:port/db or postgresql://user@host/db",
    )
    idempotency_ttl_s: float = Field(default=7 * 24 * 3600, gt=0)
    idempotency_lease_s: float = Field(default=60.0, gt=0, description="Claim lease for shared stores.")
    concurrency: Concurrency = "partition"
    workers: int = Field(default=16, ge=1, description="Workers per partition in key-ordered mode.")
    max_in_flight: int = Field(
        default=2000, ge=1, description="Messages fetched but not finished, per worker."
    )
    commit_every: int = Field(default=1000, ge=1)
    commit_interval_s: float = Field(default=1.0, gt=0)
    drain_timeout_s: float = Field(
        default=25.0, ge=0, description="Time to finish in-flight work on shutdown."
    )
    revoke_timeout_s: float = Field(default=10.0, ge=0)
    session_timeout_ms: int = Field(default=45000, ge=1000)
    heartbeat_interval_ms: int = Field(default=3000, ge=100)
    max_poll_interval_ms: int = Field(default=300000, ge=1000)
    assignment_strategy: AssignmentStrategy = "cooperative-sticky"
    group_instance_id: str | None = Field(default=None, description="Static membership id (one per pod).")
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    fetch_wait_max_ms: int = Field(default=100, ge=0)
    prefetch_max_kbytes: int = Field(default=8192, ge=1, description="librdkafka's local prefetch bound.")
    switch_interval_ms: float = Field(
        default=20.0,
        gt=0,
        description="Python's thread switch interval while the worker runs (process-wide).",
    )
    dead_letter_tracebacks: bool = Field(
        default=True,
        description="Put the failure's traceback in retry and dead-letter headers (secrets masked either way).",
    )
    metrics_enabled: bool = True
    metrics_port: int = Field(default=9400, ge=0, le=65535, description="0: no HTTP server.")
    metrics_host: str = Field(
        default="0.0.0.0",
        min_length=1,
        description="Address /metrics, /healthz and /readyz listen on (127.0.0.1: this host only).",
    )
    health_ttl_s: float = Field(default=30.0, gt=0)
    log_format: LogFormat = "auto"
    log_level: str = "INFO"


def load_settings(
    config_file: Path | None = None, **overrides: Any
) -> tuple[ConsumerSettings, KafkaSettings]:
    """Explicit ``overrides`` win over the YAML file, which wins over ``KEP_*`` variables.

    The YAML file holds worker keys at the top level and connection keys under ``kafka:``.
    """
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{config_file}: cannot read worker config: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: worker config must be a mapping, got {type(loaded).__name__}")
        data = loaded
    kafka_data = dict(data.pop("kafka", None) or {})
    kafka_data.update(overrides.pop("kafka", None) or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ConsumerSettings(**data), KafkaSettings(**kafka_data)
    except ValidationError as exc:
        where = f"{config_file}: " if config_file else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"{where}invalid worker config: {problems}") from None
