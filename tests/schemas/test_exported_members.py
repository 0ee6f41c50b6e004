import pytest

import schemas
from schemas import errors

pytestmark = pytest.mark.unit

EXPORTED = {
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
}


def test_exported_members_are_pinned() -> None:
    assert set(schemas.__all__) == EXPORTED
    assert len(schemas.__all__) == len(EXPORTED)
    for name in EXPORTED:
        assert getattr(schemas, name) is not None


def test_every_error_derives_from_kep_error() -> None:
    error_types = [
        obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, Exception)
    ]
    assert len(error_types) == 8
    assert all(issubclass(error, schemas.KepError) for error in error_types)
    assert issubclass(schemas.UnknownSchemaError, schemas.DecodeError)
