"""kep schemas: a service's Avro schemas, event models (hand-written or built from the schemas), wire
formats and compatibility checks.

``schemas`` imports no other kep package and ships no schemas of its own. See ``docs/schemas.md``.
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
from kep.schemas.generated import model_from_schema
from kep.schemas.model_schema import AvroType, Float32, Int32, avro_schema, schema_drift
from kep.schemas.registry import SCHEMAS_ENV, LocalSchemaRegistry, SchemaVersion, schema_paths_from_env
from kep.schemas.settings import SchemaRegistrySettings
from kep.schemas.single_object import SingleObjectCodec

__all__ = [
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
    "LocalSchemaRegistry",
    "SCHEMAS_ENV",
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
    "model_from_schema",
    "record_name_subject",
    "schema_drift",
    "schema_paths_from_env",
    "schema_registry_client",
    "topic_name_subject",
    "topic_record_name_subject",
]
