import pytest

from kep import schemas
from kep.schemas import errors

pytestmark = pytest.mark.unit


def test_every_error_derives_from_kep_error() -> None:
    error_types = [
        obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, Exception)
    ]
    assert len(error_types) == 10
    assert all(issubclass(error, schemas.KepError) for error in error_types)
    assert issubclass(schemas.UnknownSchemaError, schemas.DecodeError)
    # a registry that cannot answer is not the data's fault: never dead-lettered as undecodable
    assert not issubclass(schemas.SchemaRegistryUnavailableError, schemas.DecodeError)
    assert issubclass(schemas.SchemaNotRegisteredError, schemas.SchemaNotFoundError)
