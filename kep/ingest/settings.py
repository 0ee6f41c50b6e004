"""``kep ingest`` settings: explicit options, then ``KEP_INGEST_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = "sqlite:///.kep/idempotency.db"


class IngestSettings(BaseSettings):
    """How the HTTP intake listens, bounds its requests and verifies webhook signatures.

    ``repr`` and ``str`` never show the webhook secret (``SecretStr``).
    """

    model_config = SettingsConfigDict(env_prefix="KEP_INGEST_", frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to listen on (0.0.0.0: every interface).")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0: any free port).")
    ack_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a request waits for the broker's acknowledgement before the answer is 503.",
    )
    max_body_bytes: int = Field(default=1_048_576, gt=0, description="Largest body of one event (413 above).")
    max_batch_bytes: int = Field(default=16_777_216, gt=0, description="Largest body of a batch (413 above).")
    max_batch_events: int = Field(default=1000, ge=1, description="Most events in one batch (413 above).")
    body_timeout_s: float = Field(default=10.0, gt=0, description="Time to receive a whole body (408 after).")
    keep_alive_s: float = Field(
        default=5.0, gt=0, description="Idle keep-alive connections close after this."
    )
    max_connections: int = Field(
        default=2000, ge=1, description="Connections and requests at once; more are answered 503."
    )
    shutdown_timeout_s: float = Field(
        default=20.0, ge=0, description="On SIGTERM, time for requests in flight to get their answer."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key for webhook signatures; when set, every POST must be signed.",
    )
    signature_header: str = Field(default="Kep-Signature", min_length=1, description="The signature header.")
    signature_tolerance_s: float = Field(
        default=300.0, gt=0, description="A signature's timestamp may be this far from the intake's clock."
    )
    answer_cache_size: int = Field(
        default=100_000, ge=0, description="Answers kept for retried requests (per Idempotency-Key)."
    )
    answer_ttl_s: float = Field(default=24 * 3600.0, gt=0, description="How long an answer is kept.")
    linger_ms: float = Field(
        default=5.0, ge=0, description="Producer batching delay: part of every 202, fewer broker requests."
    )
    event_types: tuple[str, ...] = Field(
        default=(),
        description="Event types (Avro full names) accepted; empty: every type the topology routes to one topic.",
    )
    status_store: str | None = Field(
        default=None,
        description="Where workers record event and batch status (default: $KEP_IDEMPOTENCY_STORE or "
        f"{DEFAULT_STORE}); 'none' to serve no status.",
    )

    @field_validator("signature_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
            raise ValueError("a header name is letters, digits, '-' and '_'")
        return value
