"""Connection settings shared by every Kafka client kep creates, mapped explicitly to librdkafka keys."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from kep.schemas.settings import KepSettings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


class KafkaSettings(KepSettings):
    """Where the cluster is and how to authenticate. Environment: ``KEP_KAFKA_*``.

    ``repr`` and ``str`` never show the password (``SecretStr``).
    """

    model_config = SettingsConfigDict(env_prefix="KEP_KAFKA_", frozen=True, extra="forbid")

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

    def as_librdkafka_dict(self) -> dict[str, Any]:
        """The librdkafka keys for these settings; only keys that are set are present."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol.lower(),
            "log.connection.close": False,  # idle connections closed by the broker are not news
        }
        optional: dict[str, Any] = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        return conf
