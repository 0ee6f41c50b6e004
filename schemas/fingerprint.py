"""CRC-64-AVRO (Rabin) fingerprints of a schema's Parsing Canonical Form, as the Avro specification defines.

The fingerprint is an unsigned 64-bit number. Single-object encoding puts it on the wire as 8 bytes,
little-endian, and that byte string is what kep passes around (``SchemaVersion.fingerprint``); the ``sof:``
header value is the same 8 bytes in hex. ``fingerprint_int`` gives the number as the Avro specification's test
vectors print it (a signed 64-bit integer, as Java's ``long``).
"""

from __future__ import annotations

from typing import Any

from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from kep.schemas.errors import InvalidSchemaError

__all__ = ["canonical_form", "fingerprint", "fingerprint_hex", "fingerprint_int"]

FINGERPRINT_SIZE = 8


def canonical_form(schema: Any) -> str:
    """The Parsing Canonical Form of a schema (JSON text, a parsed schema or a dict)."""
    try:
        return to_parsing_canonical_form(schema)
    except Exception as exc:  # fastavro raises several types for bad input
        raise InvalidSchemaError(f"cannot compute the canonical form: {exc}") from exc


def fingerprint(schema: Any) -> bytes:
    """CRC-64-AVRO of the canonical form: 8 bytes, little-endian, as in single-object encoding."""
    return bytes.fromhex(_fastavro_fingerprint(canonical_form(schema), "CRC-64-AVRO"))


def fingerprint_int(schema: Any) -> int:
    """The same fingerprint as a signed 64-bit integer (the form of the Avro specification's test vectors)."""
    return int.from_bytes(fingerprint(schema), "little", signed=True)


def fingerprint_hex(fp: bytes) -> str:
    """16 lowercase hex digits of the wire bytes (the part after ``sof:`` in the ``kep-schema`` header)."""
    return fp.hex()
