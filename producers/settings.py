"""Producer tuning, mapped explicitly to librdkafka producer keys. Environment: ``KEP_PRODUCER_*``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from kep.schemas.settings import KepSettings

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]


class ProducerSettings(KepSettings):
    """How ``EventProducer`` batches, compresses and bounds its queue.

    Delivery guarantees are not settings: every kep producer is idempotent with ``acks=all`` and partitions
    keyed records with murmur2, the hash the Java client uses, so a key lands on the same partition from
    any client.
    """

    model_config = SettingsConfigDict(env_prefix="KEP_PRODUCER_", frozen=True, extra="forbid")

    linger_ms: float = Field(default=5, ge=0, description="How long to wait to fill a batch.")
    batch_size: int = Field(default=1_000_000, gt=0, description="Largest batch per partition, in bytes.")
    compression: Compression = "lz4"
    queue_max_messages: int = Field(
        default=100_000, gt=0, description="Records waiting for delivery, at most."
    )
    queue_max_kbytes: int = Field(
        default=1_048_576, gt=0, description="Bytes waiting for delivery, at most (KiB)."
    )
    delivery_timeout_ms: int = Field(
        default=120_000, gt=0, description="How long a record may wait for acknowledgement before it fails."
    )
    publish_block_timeout_s: float = Field(
        default=10.0, ge=0, description="How long publish waits for room in a full queue before it gives up."
    )
    poll_every: int = Field(
        default=256, gt=0, description="Serve delivery callbacks every this many publishes (besides flush)."
    )

    def as_librdkafka_dict(self) -> dict[str, Any]:
        """The librdkafka producer keys for these settings, with the fixed delivery guarantees."""
        return {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "allow.auto.create.topics": False,
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_size,
            "compression.type": self.compression,
            "queue.buffering.max.messages": self.queue_max_messages,
            "queue.buffering.max.kbytes": self.queue_max_kbytes,
            "delivery.timeout.ms": self.delivery_timeout_ms,
        }
