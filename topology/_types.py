"""Field types shared by the topology models: Kafka names, Avro names, durations and topic configs."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from kep.topology.durations import format_duration, parse_duration

MAX_TOPIC_NAME_LENGTH = 249
# Whole ASCII strings only: \A and \Z (``$`` also matches before a final newline), ASCII classes (``\d`` takes
# every script's digits otherwise), and always used with fullmatch.
_KAFKA_NAME = re.compile(r"\A[a-zA-Z0-9._-]+\Z", re.ASCII)
_AVRO_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z", re.ASCII)
_DOTTED_NAME = _AVRO_NAME  # Python dotted paths follow the same shape
_CONFIG_KEY = re.compile(r"\A[a-z0-9]+(?:[._-][a-z0-9]+)*\Z", re.ASCII)
_INTEGER = re.compile(r"\A-?[0-9]+\Z", re.ASCII)
_INTEGER_SUFFIXES = (".ms", ".bytes", ".messages", ".replicas")


def kafka_name_problem(value: str) -> str | None:
    """Why ``value`` is not a legal Kafka topic name, or None when it is."""
    if not value:
        return "must not be empty"
    if value in (".", ".."):
        return f"{value!r} is reserved"
    if len(value) > MAX_TOPIC_NAME_LENGTH:
        return f"{value[:40]!r}... is {len(value)} characters long; Kafka allows {MAX_TOPIC_NAME_LENGTH}"
    if not _KAFKA_NAME.fullmatch(value):
        bad = sorted({ch for ch in value if not _KAFKA_NAME.fullmatch(ch)})
        return f"{value!r} contains {''.join(bad)!r}; Kafka allows only letters, digits, '.', '_' and '-'"
    return None


def _kafka_name(value: str) -> str:
    problem = kafka_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _avro_name(value: str) -> str:
    if not _AVRO_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an Avro full name like 'acme.inventory.StockReserved'")
    return value


def _dotted_name(value: str) -> str:
    if not _DOTTED_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a dotted class name like 'json.JSONDecodeError' or 'ValueError'")
    return value


def _identifier(value: str) -> str:
    if not (value.isascii() and value.isidentifier()):  # Avro field names are ASCII
        raise ValueError(f"{value!r} is not a field name")
    return value


def _duration(value: Any) -> float:
    # Bare numbers are refused (DurationError names the value): seconds or milliseconds would be a guess.
    return parse_duration(value)


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError(f"must be greater than 0, got {format_duration(seconds)}")
    return seconds


def _config_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return ",".join(value)  # cleanup.policy: [compact, delete]
    return value


def _config_key(value: str) -> str:
    if not _CONFIG_KEY.fullmatch(value):
        raise ValueError(f"{value!r} is not a Kafka config name like 'retention.ms'")
    return value


def _configs(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if key.endswith(_INTEGER_SUFFIXES) and not _INTEGER.fullmatch(item):
            raise ValueError(f"{key} must be a whole number, got {item!r}")
    return value


KafkaName = Annotated[str, AfterValidator(_kafka_name)]
AvroName = Annotated[str, AfterValidator(_avro_name)]
DottedName = Annotated[str, AfterValidator(_dotted_name)]
FieldName = Annotated[str, AfterValidator(_identifier)]
Duration = Annotated[
    float, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str, when_used="always")
]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
ConfigKey = Annotated[str, AfterValidator(_config_key)]
ConfigValue = Annotated[str, BeforeValidator(_config_value)]
TopicConfigs = Annotated[dict[ConfigKey, ConfigValue], AfterValidator(_configs)]


class FrozenModel(BaseModel):
    """Base of every topology model: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")
