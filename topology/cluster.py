"""``require_cluster``: does the cluster answer? A bounded first contact, so a command fails in seconds with one
line naming the address, instead of retrying for minutes with librdkafka printing every attempt.

It asks for the cluster's description (brokers and controller, no topic named; any answer from a broker, even
a refusal to describe the cluster, proves it is there) and watches the client's errors meanwhile: when every
bootstrap broker is down (connection refused, unknown host, a TLS handshake that fails), when authentication
fails, or when nothing answers within ``connect_timeout_s``, it raises ``ClusterUnreachableError`` with the
address and librdkafka's reason.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from kep.topology.errors import AdminError, ClusterUnreachableError
from kep.topology.settings import KafkaSettings

__all__ = ["require_cluster"]

_POLL_S = 0.05
_QUIET = logging.getLogger("kep.librdkafka.first-contact")
_QUIET.propagate = False  # its reasons come through error_cb, into the error message
_QUIET.addHandler(logging.NullHandler())
_GIVE_UP = {KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION}


def require_cluster(settings: KafkaSettings, *, timeout_s: float | None = None) -> None:
    """Return once the cluster at ``settings.bootstrap_servers`` answers; ``ClusterUnreachableError`` when it
    cannot be reached within ``timeout_s`` (default ``settings.connect_timeout_s``). A configuration librdkafka
    refuses is an ``AdminError`` naming the property."""
    timeout = settings.connect_timeout_s if timeout_s is None else timeout_s
    where = settings.bootstrap_servers
    errors: list[KafkaError] = []
    conf = {**settings.as_librdkafka_dict(), "logger": _QUIET, "error_cb": errors.append}
    try:
        admin = AdminClient(conf)
    except KafkaException as exc:
        raise AdminError(f"the Kafka client configuration is not valid: {_reason(exc)}") from None
    start = time.monotonic()
    deadline = start + timeout
    future = admin.describe_cluster(request_timeout=timeout)
    while not future.done():
        admin.poll(_POLL_S)  # serves error_cb
        given_up = next((e for e in errors if e.code() in _GIVE_UP or e.fatal()), None)
        if given_up is not None:
            raise ClusterUnreachableError(
                f"cannot reach the Kafka cluster at {where}: {_cause(errors, given_up, time.monotonic() - start)}",
                code=given_up.code(),
                name=given_up.name(),
                retriable=given_up.code() == KafkaError._ALL_BROKERS_DOWN,
            )
        if time.monotonic() >= deadline:
            break
    if not future.done():
        raise ClusterUnreachableError(
            f"cannot reach the Kafka cluster at {where}: no answer within {timeout:g}s"
            " (KEP_KAFKA_CONNECT_TIMEOUT_S)",
            retriable=True,
        )
    try:
        future.result()
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is not None and error.code() >= 0:
            return  # a broker's own error (not allowed to describe the cluster...): it answered, it is there
        reason = _cause(errors, None, time.monotonic() - start) if errors else _reason(exc)
        if error is not None and error.code() == KafkaError._TIMED_OUT:
            reason = f"no answer within {timeout:g}s (KEP_KAFKA_CONNECT_TIMEOUT_S)"
        raise ClusterUnreachableError(
            f"cannot reach the Kafka cluster at {where}: {reason}", retriable=True
        ) from None


def _reason(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)


def _cause(errors: list[KafkaError], given_up: KafkaError | None, elapsed: float) -> str:
    """The most telling error: the last one about a broker (refused, resolve, TLS). Brokers down without one:
    they took the connection but did not answer (librdkafka's request timeout)."""
    specific = [e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
    if specific:
        return specific[-1].str()
    down = f" ({given_up.str()})" if given_up is not None else ""
    return f"no answer within {max(1, round(elapsed))}s{down}"
