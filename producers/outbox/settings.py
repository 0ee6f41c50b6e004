"""Outbox and relay settings. Environment: ``KEP_OUTBOX_*``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from kep.producers.errors import OutboxError
from kep.producers.outbox.table import DEFAULT_TABLE, check_table_name
from kep.schemas.settings import KepSettings

Delivery = Literal["auto", "exactly-once", "at-least-once"]


class OutboxSettings(KepSettings):
    """Where the outbox is and how its relay publishes. The database is the idempotency store's
    (``KEP_IDEMPOTENCY_STORE``, ``sqlite:///`` or ``postgresql://``)."""

    model_config = SettingsConfigDict(env_prefix="KEP_OUTBOX_", frozen=True, extra="forbid")

    relay: bool = Field(
        default=True, description="Run the relay inside `kep run` when the idempotency store is SQL."
    )
    table: str = Field(default=DEFAULT_TABLE, description="The outbox table (an SQL identifier).")
    state_topic: str = Field(
        default="kep.outbox.relay-state",
        min_length=1,
        description="Compacted topic of the relay's progress markers (created when missing).",
    )
    delivery: Delivery = Field(
        default="auto",
        description="exactly-once (Kafka transactions; consumers read_committed), at-least-once (duplicates "
        "carry the same event id), or auto: exactly-once, at-least-once on the embedded broker.",
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Rows per Kafka transaction.")
    poll_interval_s: float = Field(default=0.2, gt=0, description="How often an idle relay looks for rows.")
    lock_retry_s: float = Field(
        default=5.0, gt=0, description="How often a standby relay tries to become the active one."
    )
    retention_s: float = Field(
        default=3600.0, ge=0, description="How long sent rows are kept (the history), in seconds."
    )
    transaction_timeout_ms: int = Field(default=60_000, ge=1000)

    @field_validator("table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        try:
            return check_table_name(value)
        except OutboxError as exc:
            raise ValueError(str(exc)) from None
