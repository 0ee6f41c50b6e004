"""Errors raised by the schemas package, and the root of every kep error.

Hierarchy (each package adds its own branch under ``KepError``)::

    KepError
    └── SchemaError
        ├── SchemaNotFoundError      a name, version, fingerprint or registry id we do not know
        │   └── SchemaNotRegisteredError  auto-registration is off and the registry lacks the schema (names the subject)
        ├── SchemaRegistryUnavailableError  the registry did not answer, or refused us: retry, never dead-letter
        ├── InvalidSchemaError       an .avsc file that does not parse (names the file)
        ├── IncompatibleSchemaError  two versions break the declared compatibility (names the field)
        ├── EncodeError              an event that does not fit its schema
        └── DecodeError              bytes that cannot be read; keeps the original bytes in ``raw``
            └── UnknownSchemaError   well-formed framing that names a schema we do not have
"""

from __future__ import annotations


class KepError(Exception):
    """Root of every error kep raises on purpose."""


class SchemaError(KepError):
    """Something is wrong with a schema or with data against a schema."""


class SchemaNotFoundError(SchemaError):
    """No schema with that name, version, fingerprint or id."""


class SchemaNotRegisteredError(SchemaNotFoundError):
    """Auto-registration is off and the schema is not registered under its subject (the message names both)."""


class SchemaRegistryUnavailableError(SchemaError):
    """The schema registry could not answer: unreachable, timed out, 5xx, or refusing our credentials.

    Not the data's fault, so never a ``DecodeError``: a consumer waits and tries again instead of dead-lettering.
    """


class InvalidSchemaError(SchemaError):
    """A schema file or definition that cannot be parsed."""


class IncompatibleSchemaError(SchemaError):
    """Two schema versions are not compatible in the declared mode."""


class EncodeError(SchemaError):
    """An event could not be encoded with its schema."""


class DecodeError(SchemaError):
    """Bytes could not be decoded. ``raw`` keeps the exact bytes so they can be dead-lettered unchanged."""

    def __init__(self, message: str, *, raw: bytes | None = None) -> None:
        super().__init__(message)
        self.raw = raw


class UnknownSchemaError(DecodeError):
    """The bytes are framed correctly but name a schema (fingerprint or registry id) we cannot resolve."""
