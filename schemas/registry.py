"""``LocalSchemaRegistry``: a service's ``.avsc`` files, by name, version and fingerprint, and their models.

Files are named ``<full name>.v<version>.avsc`` (``acme.inventory.StockReserved.v2.avsc``); the name in the
file name must be the schema's full name. A registry reads any number of sources, each a directory (every
``*.avsc`` in it) or one file; kep itself ships no schemas. Where a service's schemas are:

* the topology file's ``schemas:`` (a directory or a list, relative to the topology file), and
* ``KEP_SCHEMAS``: paths separated by ``os.pathsep`` (``:`` on Linux), read by ``schema_paths_from_env``.

``kep.topology.schema_registry(topology)`` combines the two, and every command and the worker use it.
Everything is read and parsed once, when the registry is created, so lookups on the hot path are dictionary
hits. A file that does not parse, whose name does not match its content, or that defines a version another
file defines differently, raises ``InvalidSchemaError`` naming the file and the reason.

``model(name)`` is the event model of a name: the hand-written one when a module defining it has been
imported, else a model built from the newest schema (``schemas.generated``).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema

from kep.schemas.errors import InvalidSchemaError, SchemaError, SchemaNotFoundError
from kep.schemas.events import Event, event_types
from kep.schemas.fingerprint import fingerprint, fingerprint_hex
from kep.schemas.generated import model_from_schema

__all__ = ["SCHEMAS_ENV", "LocalSchemaRegistry", "SchemaVersion", "schema_paths_from_env"]

#: Environment variable naming schema directories or files, separated by ``os.pathsep``.
SCHEMAS_ENV = "KEP_SCHEMAS"
_NO_SOURCES = (
    "no schema paths: list them under 'schemas:' in the topology file or in KEP_SCHEMAS "
    "(directories of <full name>.v<version>.avsc files)"
)
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
    """The schemas of some directories and files: ``LocalSchemaRegistry("schemas", "more/x.v1.avsc")``.

    ``LocalSchemaRegistry.default()`` reads kep's own (``KEP_SCHEMA_DIR``: ``kep.batches``) and the paths in
    ``KEP_SCHEMAS``.
    """

    def __init__(self, *sources: str | Path) -> None:
        self.sources: tuple[Path, ...] = tuple(dict.fromkeys(Path(source) for source in sources))
        self._by_name: dict[str, dict[int, SchemaVersion]] = {}
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        files: dict[Path, None] = {}
        for source in self.sources:
            if source.is_dir():
                files.update(dict.fromkeys(sorted(source.glob("*.avsc"))))
            elif source.is_file():
                files[source] = None
            else:
                raise SchemaError(f"schema path {source} does not exist (a directory of .avsc files, or one)")
        for path in files:
            self._add(_load(path))

    @classmethod
    def default(cls) -> LocalSchemaRegistry:
        """kep's own schemas and those in ``KEP_SCHEMAS``, loaded once per value of the variable."""
        return _registry_of((KEP_SCHEMA_DIR, *schema_paths_from_env()))

    @property
    def where(self) -> str:
        """The sources, for messages: ``schemas, ../shared/schemas``; or why there are none."""
        return ", ".join(str(source) for source in self.sources) if self.sources else _NO_SOURCES

    def _add(self, version: SchemaVersion) -> None:
        versions = self._by_name.setdefault(version.name, {})
        known_version = versions.get(version.version)
        if known_version is not None:
            if known_version.schema == version.schema:
                return  # the same file reached twice (a directory and a file in it, or a copy)
            raise InvalidSchemaError(
                f"{version.path}: {version.name} v{version.version} is also defined, differently, in "
                f"{known_version.path}"
            )
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
        sources = ", ".join(repr(str(source)) for source in self.sources)
        return f"LocalSchemaRegistry({sources}) ({len(self)} schemas)"

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
                f"schema {name} has no version {version} in {self.where} (versions: {have})"
            ) from None

    def by_fingerprint(self, fp: bytes) -> SchemaVersion:
        """The version whose CRC-64-AVRO fingerprint (8 bytes, little-endian) is ``fp``."""
        try:
            return self._by_fingerprint[bytes(fp)]
        except KeyError:
            raise SchemaNotFoundError(
                f"no schema with fingerprint {bytes(fp).hex()} in {self.where}"
            ) from None

    def model(self, name: str) -> type[Event]:
        """The event model of ``name``: the hand-written one if defined, else one built from the newest schema.

        ``SchemaNotFoundError`` when no schema has that name; ``SchemaError`` when the schema cannot be a kep
        event (it names the field).
        """
        written = event_types().get(name)
        if written is not None:
            return written
        newest = self.latest(name)
        return model_from_schema(newest.schema, where=f"v{newest.version}, {newest.path}")

    def _versions_of(self, name: str) -> dict[int, SchemaVersion]:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise SchemaNotFoundError(f"no schema named {name!r} in {self.where} (known: {known})") from None


KEP_SCHEMA_DIR = Path(__file__).resolve().parent / "avro"
"""kep's own events (``kep.batches.BatchCompleted``), beside a service's schemas in ``kep.topology.schema_registry``."""


def kep_schema_names() -> frozenset[str]:
    """The names of kep's own events (the schemas in ``KEP_SCHEMA_DIR``), read once."""
    return frozenset(_registry_of((KEP_SCHEMA_DIR,)).names())


def schema_paths_from_env(environ: dict[str, str] | None = None) -> list[Path]:
    """The paths in ``KEP_SCHEMAS`` (``os.pathsep``-separated; empty entries are ignored)."""
    value = (os.environ if environ is None else environ).get(SCHEMAS_ENV, "")
    return [Path(part) for part in value.split(os.pathsep) if part.strip()]


@functools.cache
def _registry_of(paths: tuple[Path, ...]) -> LocalSchemaRegistry:
    return LocalSchemaRegistry(*paths)


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
