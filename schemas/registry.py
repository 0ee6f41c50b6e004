"""``LocalSchemaRegistry``: the ``.avsc`` files of one directory, by name, version and fingerprint.

Files are named ``<full name>.v<version>.avsc`` (``kep.orders.OrderPlaced.v2.avsc``); the name in the file
name must be the schema's full name. Everything is read and parsed once, when the registry is created, so
lookups on the hot path are dictionary hits. A file that does not parse, or whose name does not match its
content, raises ``InvalidSchemaError`` naming the file and the reason.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema

from kep.schemas.errors import InvalidSchemaError, SchemaError, SchemaNotFoundError
from kep.schemas.fingerprint import fingerprint, fingerprint_hex

__all__ = ["DEFAULT_SCHEMA_DIR", "LocalSchemaRegistry", "SchemaVersion"]

DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parent / "avro"
_AVRO_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FILE_NAME = re.compile(rf"^(?P<name>{_AVRO_NAME}(?:\.{_AVRO_NAME})*)\.v(?P<version>[1-9][0-9]*)$")


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of one schema. ``fingerprint`` is CRC-64-AVRO, 8 bytes little-endian (the wire form)."""

    name: str
    version: int
    schema: dict[str, Any] = field(compare=False, repr=False)
    parsed: dict[str, Any] = field(compare=False, repr=False)
    fingerprint: bytes
    path: Path = field(compare=False)

    @property
    def fingerprint_hex(self) -> str:
        """16 hex digits of the wire bytes."""
        return fingerprint_hex(self.fingerprint)

    @property
    def schema_ref(self) -> str:
        """The ``kep-schema`` header value of data written with this version: ``sof:<16 hex>``."""
        return f"sof:{self.fingerprint_hex}"


class LocalSchemaRegistry:
    """The schemas of one directory. ``LocalSchemaRegistry.default()`` is the packaged ``schemas/avro``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise SchemaError(f"schema directory {self.directory} does not exist")
        self._by_name: dict[str, dict[int, SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        for path in sorted(self.directory.glob("*.avsc")):
            self._add(_load(path))

    @classmethod
    def default(cls) -> LocalSchemaRegistry:
        """The packaged schemas, loaded once per process."""
        return _default_registry()

    def _add(self, version: SchemaVersion) -> None:
        versions = self._by_name.setdefault(version.name, {})
        versions[version.version] = version
        known = self._by_fingerprint.get(version.fingerprint)
        if known is None or known.version < version.version:
            # versions that differ only in docs share a fingerprint; the newest answers for them
            self._by_fingerprint[version.fingerprint] = version

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._by_name.values())

    def __iter__(self) -> Iterator[SchemaVersion]:
        """Every version, by name then version."""
        for name in self.names():
            yield from (self._by_name[name][v] for v in self.versions(name))

    def __repr__(self) -> str:
        return f"LocalSchemaRegistry({str(self.directory)!r}, {len(self)} schemas)"

    def names(self) -> list[str]:
        """Full names of all schemas, sorted."""
        return sorted(self._by_name)

    def versions(self, name: str) -> list[int]:
        """Version numbers of ``name``, ascending."""
        return sorted(self._versions_of(name))

    def latest(self, name: str) -> SchemaVersion:
        """The newest version of ``name`` (the reader schema when decoding)."""
        versions = self._versions_of(name)
        return versions[max(versions)]

    def get(self, name: str, version: int) -> SchemaVersion:
        """One version of ``name``."""
        versions = self._versions_of(name)
        try:
            return versions[version]
        except KeyError:
            have = ", ".join(str(v) for v in sorted(versions))
            raise SchemaNotFoundError(
                f"schema {name} has no version {version} in {self.directory} (versions: {have})"
            ) from None

    def by_fingerprint(self, fp: bytes) -> SchemaVersion:
        """The version whose CRC-64-AVRO fingerprint (8 bytes, little-endian) is ``fp``."""
        try:
            return self._by_fingerprint[bytes(fp)]
        except KeyError:
            raise SchemaNotFoundError(
                f"no schema with fingerprint {bytes(fp).hex()} in {self.directory}"
            ) from None

    def _versions_of(self, name: str) -> dict[int, SchemaVersion]:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise SchemaNotFoundError(
                f"no schema named {name!r} in {self.directory} (known: {known})"
            ) from None


@functools.cache
def _default_registry() -> LocalSchemaRegistry:
    return LocalSchemaRegistry(DEFAULT_SCHEMA_DIR)


def _load(path: Path) -> SchemaVersion:
    match = _FILE_NAME.match(path.name.removesuffix(".avsc"))
    if match is None:
        raise InvalidSchemaError(f"{path}: the file name must be <full name>.v<version>.avsc (a.b.X.v1.avsc)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise InvalidSchemaError(f"{path}: not valid JSON: {exc.msg} at {where}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSchemaError(f"{path}: cannot be read: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("type") not in ("record", "enum", "fixed"):
        raise InvalidSchemaError(f"{path}: the top level must be a named type (record, enum or fixed)")
    try:
        parsed: dict[str, Any] = parse_schema(raw, named_schemas={})  # type: ignore[assignment]
        fp = fingerprint(parsed)
    except Exception as exc:  # fastavro raises SchemaParseException, UnknownType, ValueError, KeyError...
        raise InvalidSchemaError(f"{path}: not a valid Avro schema: {exc}") from exc
    name = parsed["name"]
    if name != match["name"]:
        raise InvalidSchemaError(f"{path}: the file name says {match['name']} but the schema is named {name}")
    return SchemaVersion(name, int(match["version"]), raw, parsed, fp, path)
