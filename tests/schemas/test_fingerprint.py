from __future__ import annotations

import pytest

from kep.schemas import LocalSchemaRegistry, canonical_form, fingerprint, fingerprint_hex, fingerprint_int

pytestmark = pytest.mark.unit

# Test vectors of the Avro project (share/test/data/schema-tests.txt): schema, canonical form, and
# CRC-64-AVRO as a signed 64-bit integer.
AVRO_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"null"}', '"null"', 7195948357588979594),
    ('"boolean"', '"boolean"', -6970731678124411036),
    ('"int"', '"int"', 8247732601305521295),
    ('"long"', '"long"', -3434872931120570953),
    ('"double"', '"double"', -8181574048448539266),
    (
        '{"type":"fixed","name":"foo","size":15}',
        '{"name":"foo","type":"fixed","size":15}',
        1756455273707447556,
    ),
    (
        '{"type":"record","name":"foo","fields":[{"name":"f1","type":"boolean"}]}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
        7843277075252814651,
    ),
]


@pytest.mark.parametrize(("schema", "canonical", "expected"), AVRO_VECTORS)
def test_crc64_avro_matches_the_avro_specification_vectors(
    schema: str, canonical: str, expected: int
) -> None:
    import json

    parsed = json.loads(schema)
    assert canonical_form(parsed) == canonical
    assert fingerprint_int(parsed) == expected


def test_wire_form_is_eight_little_endian_bytes() -> None:
    fp = fingerprint("null")
    assert len(fp) == 8
    assert fp == (7195948357588979594).to_bytes(8, "little", signed=True)
    assert fingerprint_hex(fp) == "8a8f25cce724dd63"  # 0x63dd24e7cc258f8a, least significant byte first


def test_docs_and_defaults_do_not_change_the_fingerprint() -> None:
    bare = {"type": "record", "name": "a.R", "fields": [{"name": "x", "type": "long"}]}
    documented = {
        "type": "record",
        "name": "R",
        "namespace": "a",
        "doc": "A record.",
        "fields": [{"name": "x", "type": "long", "doc": "An x.", "default": 3}],
    }
    assert fingerprint(bare) == fingerprint(documented)


def test_registry_fingerprints_are_those_of_the_files() -> None:
    for version in LocalSchemaRegistry.default():
        assert version.fingerprint == fingerprint(version.schema)
        assert version.schema_ref == f"sof:{version.fingerprint.hex()}"
