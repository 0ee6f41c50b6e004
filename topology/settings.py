"""Connection settings shared by every Kafka client kep creates, mapped explicitly to librdkafka keys.

Typed settings come first; ``librdkafka`` is the escape hatch for any other librdkafka property (``client.rack``,
``sasl.oauthbearer.*``, ``ssl.*``, ``isolation.level``...). A passthrough key that kep sets itself (a typed
setting, a producer or worker setting, or a key behind one of kep's guarantees) is refused with the setting to
use instead, so the passthrough never silently overrides a setting, nor is silently overridden by one. Values of
keys that look secret are kept as ``SecretStr``. See ``docs/configuration.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field, ImportString, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kep.schemas.settings import KepSettings
from kep.topology._librdkafka_log import LIBRDKAFKA_LOGGER

__all__ = ["LIBRDKAFKA_ENV_PREFIX", "KafkaSettings", "is_secret_key"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
LibrdkafkaValue = str | int | float | bool | SecretStr  # SecretStr last: plain strings stay str

#: One passthrough key per variable: ``KEP_KAFKA_LIBRDKAFKA__CLIENT_RACK=use1-az1`` sets ``client.rack``.
LIBRDKAFKA_ENV_PREFIX = "KEP_KAFKA_LIBRDKAFKA__"

_PROPERTY = re.compile(r"^[a-z][a-z0-9]*(\.[a-z0-9]+)*$")
_SECRET_PARTS = frozenset({"password", "secret", "passphrase", "pem", "token", "credentials"})
_SECRET_KEYS = frozenset({"sasl.oauthbearer.config"})

# librdkafka key -> how to set it instead. Aliases are listed with their key: librdkafka applies both.
_TYPED = {
    "bootstrap.servers": "bootstrap_servers (KEP_KAFKA_BOOTSTRAP_SERVERS, -b)",
    "metadata.broker.list": "bootstrap_servers (KEP_KAFKA_BOOTSTRAP_SERVERS, -b)",
    "client.id": "client_id (KEP_KAFKA_CLIENT_ID)",
    "security.protocol": "security_protocol (KEP_KAFKA_SECURITY_PROTOCOL)",
    "sasl.mechanism": "sasl_mechanism (KEP_KAFKA_SASL_MECHANISM)",
    "sasl.mechanisms": "sasl_mechanism (KEP_KAFKA_SASL_MECHANISM)",
    "sasl.username": "sasl_username (KEP_KAFKA_SASL_USERNAME)",
    "sasl.password": "sasl_password (KEP_KAFKA_SASL_PASSWORD)",
    "ssl.ca.location": "ssl_ca_location (KEP_KAFKA_SSL_CA_LOCATION)",
    "ssl.certificate.location": "ssl_certificate_location (KEP_KAFKA_SSL_CERTIFICATE_LOCATION)",
    "ssl.key.location": "ssl_key_location (KEP_KAFKA_SSL_KEY_LOCATION)",
    "ssl.key.password": "ssl_key_password (KEP_KAFKA_SSL_KEY_PASSWORD)",
    # producer settings (kep.producers.settings.ProducerSettings)
    "linger.ms": "the producer setting linger_ms (KEP_PRODUCER_LINGER_MS)",
    "queue.buffering.max.ms": "the producer setting linger_ms (KEP_PRODUCER_LINGER_MS)",
    "batch.size": "the producer setting batch_size (KEP_PRODUCER_BATCH_SIZE)",
    "compression.type": "the producer setting compression (KEP_PRODUCER_COMPRESSION)",
    "compression.codec": "the producer setting compression (KEP_PRODUCER_COMPRESSION)",
    "queue.buffering.max.messages": "the producer setting queue_max_messages (KEP_PRODUCER_QUEUE_MAX_MESSAGES)",
    "queue.buffering.max.kbytes": "the producer setting queue_max_kbytes (KEP_PRODUCER_QUEUE_MAX_KBYTES)",
    "delivery.timeout.ms": "the producer setting delivery_timeout_ms (KEP_PRODUCER_DELIVERY_TIMEOUT_MS)",
    "message.timeout.ms": "the producer setting delivery_timeout_ms (KEP_PRODUCER_DELIVERY_TIMEOUT_MS)",
    # worker settings (kep.consumers.settings.ConsumerSettings)
    "group.id": "the app's group (App(group=...), kep run --group, KEP_GROUP)",
    "auto.offset.reset": "the worker setting auto_offset_reset (KEP_AUTO_OFFSET_RESET)",
    "session.timeout.ms": "the worker setting session_timeout_ms (KEP_SESSION_TIMEOUT_MS)",
    "heartbeat.interval.ms": "the worker setting heartbeat_interval_ms (KEP_HEARTBEAT_INTERVAL_MS)",
    "max.poll.interval.ms": "the worker setting max_poll_interval_ms (KEP_MAX_POLL_INTERVAL_MS)",
    "partition.assignment.strategy": "the worker setting assignment_strategy (KEP_ASSIGNMENT_STRATEGY)",
    "fetch.wait.max.ms": "the worker setting fetch_wait_max_ms (KEP_FETCH_WAIT_MAX_MS)",
    "queued.max.messages.kbytes": "the worker setting prefetch_max_kbytes (KEP_PREFETCH_MAX_KBYTES)",
    "group.instance.id": "the worker setting group_instance_id (KEP_GROUP_INSTANCE_ID)",
}
_FIXED = {
    "enable.idempotence": "every kep producer is idempotent",
    "acks": "every kep producer waits for all in-sync replicas (acks=all)",
    "request.required.acks": "every kep producer waits for all in-sync replicas (acks=all)",
    "partitioner": "kep partitions keys with murmur2, as the Java client does",
    "allow.auto.create.topics": "topics come from the topology (kep topology apply)",
    "enable.auto.commit": "the worker commits only finished offsets",
    "enable.auto.offset.store": "the worker commits only finished offsets",
}
_CALLBACKS = frozenset(
    {"error_cb", "throttle_cb", "stats_cb", "log_cb", "logger", "on_delivery", "on_commit", "oauth_cb"}
)


def is_secret_key(key: str) -> bool:
    """True for librdkafka keys whose values must not be shown (``*.password``, ``*.secret``, ``*.pem``...)."""
    return key in _SECRET_KEYS or not _SECRET_PARTS.isdisjoint(key.split("."))


def _reason_refused(key: str) -> str | None:
    if key == "oauth_cb":
        return "a token callback is set with the oauth_cb setting (KEP_KAFKA_OAUTH_CB=module:function)"
    if key in _CALLBACKS:
        return "a Python callback: kep sets it itself"
    if not _PROPERTY.match(key):
        return "not a librdkafka property name (lower case, dot-separated: client.rack)"
    if key in _TYPED:
        return f"set it with {_TYPED[key]}"
    if key in _FIXED:
        return f"kep sets it itself: {_FIXED[key]}"
    return None


class _LibrdkafkaEnv(PydanticBaseSettingsSource):
    """``KEP_KAFKA_LIBRDKAFKA__<KEY>`` variables, one passthrough key each (``_`` in the name stands for ``.``)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {
            name[len(LIBRDKAFKA_ENV_PREFIX) :].lower().replace("_", "."): value
            for name, value in os.environ.items()
            if name.upper().startswith(LIBRDKAFKA_ENV_PREFIX) and len(name) > len(LIBRDKAFKA_ENV_PREFIX)
        }
        return {"librdkafka": found} if found else {}


class KafkaSettings(KepSettings):
    """Where the cluster is and how to authenticate. Environment: ``KEP_KAFKA_*``.

    ``repr`` and ``str`` never show the password (``SecretStr``), nor the value of a passthrough key that looks
    secret.
    """

    model_config = SettingsConfigDict(
        env_prefix="KEP_KAFKA_", frozen=True, extra="forbid", hide_input_in_errors=True
    )

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port...]")
    client_id: str = "kep"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    librdkafka: dict[str, LibrdkafkaValue] = Field(
        default_factory=dict,
        description="Any other librdkafka property, passed as is (KEP_KAFKA_LIBRDKAFKA as a JSON object, "
        "or KEP_KAFKA_LIBRDKAFKA__CLIENT_RACK=... one key per variable).",
    )
    connect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long a command waits for the cluster's first answer before it gives up "
        "(kep produce, topology plan/apply, lag, dlq, kep run start-up).",
    )
    oauth_cb: ImportString[Callable[..., Any]] | None = Field(
        default=None,
        description="OAUTHBEARER token callback, module:function (or the function in Python): "
        "called with sasl.oauthbearer.config, returns (token, expiry in epoch seconds[, principal, extensions]).",
    )

    @classmethod
    def extra_env_sources(cls, settings_cls: type[BaseSettings]) -> tuple[PydanticBaseSettingsSource, ...]:
        return (_LibrdkafkaEnv(settings_cls),)

    @field_validator("librdkafka", mode="before")
    @classmethod
    def _hide_secret_values(cls, value: Any) -> Any:
        # Before validation, so a value that fails later is already hidden in the error.
        if not isinstance(value, Mapping):
            return value
        return {
            key: SecretStr(str(v))
            if isinstance(key, str) and is_secret_key(key) and isinstance(v, str)
            else v
            for key, v in value.items()
        }

    @field_validator("librdkafka")
    @classmethod
    def _refuse_keys_kep_sets(cls, value: dict[str, LibrdkafkaValue]) -> dict[str, LibrdkafkaValue]:
        problems = [f"{key!r}: {reason}" for key in value if (reason := _reason_refused(key)) is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def as_librdkafka_dict(self) -> dict[str, Any]:
        """The librdkafka keys for these settings; only keys that are set are present. Holds secrets in clear:
        hand it to a client, never to a log."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol.lower(),
            "log.connection.close": False,  # idle connections closed by the broker are not news
            "logger": LIBRDKAFKA_LOGGER,  # librdkafka's lines through kep's logging, rate-limited
        }
        optional: dict[str, Any] = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
            "oauth_cb": self.oauth_cb,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        conf.update(
            {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in self.librdkafka.items()}
        )
        return conf
