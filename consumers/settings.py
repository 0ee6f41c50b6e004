"""Worker settings: explicit arguments, then ``KEP_*`` environment variables, then a YAML file, then defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict, SettingsError

from kep.consumers.errors import ConfigError
from kep.schemas.settings import KepSettings, SchemaRegistrySettings, settings_problems
from kep.schemas.yaml_guard import yaml_hazard
from kep.topology.settings import KafkaSettings

Concurrency = Literal["partition", "key"]
AssignmentStrategy = Literal["cooperative-sticky", "range", "roundrobin"]
GroupProtocol = Literal["classic", "consumer"]
RemoteAssignor = Literal["uniform", "range"]
CLASSIC_ONLY_KEYS = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy")
"""librdkafka keys of the classic group protocol: with ``group.protocol=consumer`` it refuses to create a consumer
that sets them (the broker holds the session timeout and heartbeat interval; ``group.remote.assignor`` replaces
the assignment strategy)."""
LogFormat = Literal["auto", "console", "json"]
_S = TypeVar("_S", bound=KepSettings)


class ConsumerSettings(KepSettings):
    """How a ``kep run`` worker behaves. Every field can be set as ``KEP_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="KEP_", frozen=True, extra="forbid")

    group: str | None = Field(default=None, description="Override the app's consumer group id.")
    topology: Path | None = Field(default=None, description="Topology YAML (required: kep ships none).")
    schema_registry_url: str | None = Field(default=None, description="Confluent Schema Registry URL.")
    idempotency_store: str = Field(
        default="sqlite:///.kep/idempotency.db",
        description="memory://, sqlite:///path, redis://host:port/db or postgresql://user@host/db",
    )
    idempotency_ttl_s: float = Field(default=7 * 24 * 3600, gt=0)
    idempotency_lease_s: float = Field(default=60.0, gt=0, description="Claim lease for shared stores.")
    processes: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(
        default="auto",
        description="Worker processes `kep run` runs in the group (auto: one per usable core, at most the "
        "group's partitions). A process spends about one core.",
    )
    concurrency: Concurrency = "partition"
    workers: int = Field(default=16, ge=1, description="Workers per partition in key-ordered mode.")
    max_in_flight: int = Field(
        default=2000, ge=1, description="Messages fetched but not finished, per worker."
    )
    consume_timeout_s: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="Longest the poll thread waits for the first record when none is there (it returns at once "
        "with what is there; housekeeping such as commits and due retries runs at least this often).",
    )
    retry_batch_wait_s: float = Field(
        default=0.25,
        ge=0,
        le=10,
        description="Longest a retry record that has come due waits for others of its retry partition, so that "
        "they run as one batch (one claim and one completion for their keys) rather than a few at a time; at "
        "most a quarter of the tier's delay. Never early; 0: each at its due time.",
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
    assignment_strategy: AssignmentStrategy = Field(
        default="cooperative-sticky", description="Client-side assignor (group_protocol=classic)."
    )
    group_protocol: GroupProtocol = Field(
        default="classic",
        description="classic, or consumer (KIP-848, Kafka 4.0+: the broker assigns; session timeout and "
        "heartbeat interval are the broker's group.consumer.* settings).",
    )
    group_remote_assignor: RemoteAssignor | None = Field(
        default=None, description="Broker-side assignor with group_protocol=consumer (default: the broker's)."
    )
    group_instance_id: str | None = Field(default=None, description="Static membership id (one per pod).")
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    fetch_wait_max_ms: int = Field(default=100, ge=0)
    prefetch_max_kbytes: int = Field(default=8192, ge=1, description="librdkafka's local prefetch bound.")
    switch_interval_ms: float = Field(
        default=20.0,
        gt=0,
        description="Python's thread switch interval while the worker runs (process-wide).",
    )
    event_status: bool = Field(
        default=True,
        description="Record each event's state and count batch members in the idempotency store's database.",
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

    @model_validator(mode="after")
    def _assignor_needs_the_consumer_protocol(self) -> ConsumerSettings:
        if self.group_remote_assignor is not None and self.group_protocol != "consumer":
            raise ValueError(
                "group_remote_assignor needs group_protocol=consumer "
                "(the classic protocol assigns on the client: assignment_strategy)"
            )
        return self

    def group_config(self) -> dict[str, Any]:
        """The librdkafka keys of group membership for ``group_protocol``: the classic protocol's session
        timeout, heartbeat interval and assignment strategy, or ``group.protocol=consumer`` (and the remote
        assignor) without them."""
        if self.group_protocol == "consumer":
            conf: dict[str, Any] = {"group.protocol": "consumer"}
            if self.group_remote_assignor is not None:
                conf["group.remote.assignor"] = self.group_remote_assignor
            return conf
        return {
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": self.heartbeat_interval_ms,
            "partition.assignment.strategy": self.assignment_strategy,
        }


def load_settings(
    config_file: Path | None = None, **overrides: Any
) -> tuple[ConsumerSettings, KafkaSettings]:
    """Explicit ``overrides`` (command-line options; None means not given) win over ``KEP_*`` environment
    variables, which win over the YAML file, which wins over the defaults.

    The YAML file holds worker keys at the top level, connection keys under ``kafka:`` and schema registry
    keys under ``schema_registry:`` (``load_schema_registry_settings``).
    """
    data = _read_config(config_file)
    data.pop("schema_registry", None)
    kafka_file = _section(data, "kafka", config_file)
    kafka_explicit = {k: v for k, v in (overrides.pop("kafka", None) or {}).items() if v is not None}
    explicit = {k: v for k, v in overrides.items() if v is not None}
    where = f"{config_file}: " if config_file else ""
    return (
        _build(ConsumerSettings, data, explicit, where, ""),
        _build(KafkaSettings, kafka_file, kafka_explicit, where, "kafka."),
    )


def load_schema_registry_settings(
    config_file: Path | None = None, **overrides: Any
) -> SchemaRegistrySettings:
    """How the worker talks to its schema registry: ``overrides``, then ``KEP_SCHEMA_REGISTRY_*``, then the
    ``schema_registry:`` section of the YAML file, then the defaults. (The URL is ``schema_registry_url``.)"""
    section = _section(_read_config(config_file), "schema_registry", config_file)
    where = f"{config_file}: " if config_file else ""
    explicit = {k: v for k, v in overrides.items() if v is not None}
    return _build(SchemaRegistrySettings, section, explicit, where, "schema_registry.")


def _read_config(config_file: Path | None) -> dict[str, Any]:
    if config_file is None:
        return {}
    try:
        text = Path(config_file).read_text()
        hazard = yaml_hazard(text, "a worker config")
        if hazard is not None:
            line = f" (line {hazard.line})" if hazard.line is not None else ""
            raise ConfigError(f"{config_file}{line}: {hazard.reason}")
        loaded = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{config_file}: cannot read worker config: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{config_file}: worker config must be a mapping, got {type(loaded).__name__}")
    return loaded


def _section(data: dict[str, Any], name: str, config_file: Path | None) -> dict[str, Any]:
    section = data.pop(name, None) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{config_file}: {name!r} must be a mapping, got {type(section).__name__}")
    return section


def _build(
    cls: type[_S], file_section: dict[str, Any], explicit: dict[str, Any], where: str, prefix: str
) -> _S:
    try:
        return cls.load(file_section, **explicit)
    except (ValidationError, SettingsError) as exc:
        raise ConfigError(f"{where}invalid worker config: {settings_problems(exc, prefix)}") from None
