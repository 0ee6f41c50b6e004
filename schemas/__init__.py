"""kep schemas: Avro schemas, event models, wire formats and compatibility checks.

``schemas`` imports no other kep package. See ``docs/schemas.md``.
"""

from kep.schemas.codec import EventCodec, codec_for
from kep.schemas.compat import (
    CompatibilityMode,
    Incompatibility,
    VersionCheck,
    check_compatibility,
    check_registry,
    ensure_compatible,
)
from kep.schemas.confluent import (
    ConfluentCodec,
    SubjectStrategy,
    record_name_subject,
    schema_registry_client,
    topic_name_subject,
    topic_record_name_subject,
)
from kep.schemas.errors import (
    DecodeError,
    EncodeError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    KepError,
    SchemaError,
    SchemaNotFoundError,
    SchemaNotRegisteredError,
    SchemaRegistryUnavailableError,
    UnknownSchemaError,
)
from kep.schemas.events import AvroRecord, Event, event_type_for, event_types
from kep.schemas.fingerprint import canonical_form, fingerprint, fingerprint_hex, fingerprint_int
from kep.schemas.model_schema import AvroType, Float32, Int32, avro_schema, schema_drift
from kep.schemas.orders import LineItem, OrderPlaced, PaymentCaptured, PaymentMethod
from kep.schemas.registry import DEFAULT_SCHEMA_DIR, LocalSchemaRegistry, SchemaVersion
from kep.schemas.settings import SchemaRegistrySettings
from kep.schemas.single_object import SingleObjectCodec

__all__ = [
    "DEFAULT_SCHEMA_DIR",
    "AvroRecord",
    "AvroType",
    "CompatibilityMode",
    "ConfluentCodec",
    "DecodeError",
    "EncodeError",
    "Event",
    "EventCodec",
    "Float32",
    "Incompatibility",
    "IncompatibleSchemaError",
    "Int32",
    "InvalidSchemaError",
    "KepError",
    "LineItem",
    "LocalSchemaRegistry",
    "OrderPlaced",
    "PaymentCaptured",
    "PaymentMethod",
    "SchemaError",
    "SchemaNotFoundError",
    "SchemaNotRegisteredError",
    "SchemaRegistrySettings",
    "SchemaRegistryUnavailableError",
    "SchemaVersion",
    "SingleObjectCodec",
    "SubjectStrategy",
    "UnknownSchemaError",
    "VersionCheck",
    "avro_schema",
    "canonical_form",
    "check_compatibility",
    "check_registry",
    "codec_for",
    "ensure_compatible",
    "event_type_for",
    "event_types",
    "fingerprint",
    "fingerprint_hex",
    "fingerprint_int",
    "record_name_subject",
    "schema_drift",
    "schema_registry_client",
    "topic_name_subject",
    "topic_record_name_subject",
]
