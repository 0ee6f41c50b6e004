"""Schema compatibility, by the Avro specification's resolution rules, naming the offending field.

``check_compatibility(writer, reader, mode)`` takes the older version as ``writer`` and the newer one as
``reader``:

- ``BACKWARD``: the new schema can read data written with the old one (upgrade consumers first);
- ``FORWARD``: the old schema can read data written with the new one (upgrade producers first);
- ``FULL``: both.

A reader can read a writer's data when the types match, or the writer's is promotable (``int`` -> ``long``
-> ``float`` -> ``double``, ``string`` <-> ``bytes``); records, enums and fixed have the same unqualified name
(or the reader lists the writer's as an alias); every reader field is in the writer or has a default; every
writer enum symbol is in the reader or the reader's enum has a default; fixed sizes are equal; every branch
of a writer union is readable; a reader union has a branch that reads the writer's type. Logical types do not
take part, as in the specification.

Paths name the field from the record down: ``OrderPlaced.items[].sku`` (``[]``: array items, ``{}``: map
values).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fastavro import parse_schema

from kep.schemas.errors import IncompatibleSchemaError, InvalidSchemaError
from kep.schemas.registry import LocalSchemaRegistry

__all__ = [
    "CompatibilityMode",
    "Incompatibility",
    "VersionCheck",
    "check_compatibility",
    "check_registry",
    "ensure_compatible",
]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_PROMOTIONS = frozenset({
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"), ("long", "double"),
    ("float", "double"), ("string", "bytes"), ("bytes", "string"),
})  # fmt: skip
_NAMED = frozenset({"record", "enum", "fixed"})


class CompatibilityMode(StrEnum):
    """Which way data must stay readable between consecutive versions."""

    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One way the versions break the mode: where (``OrderPlaced.items[].sku``) and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class VersionCheck:
    """The result of checking one pair of consecutive versions of one schema."""

    name: str
    old_version: int
    new_version: int
    mode: CompatibilityMode
    incompatibilities: tuple[Incompatibility, ...]

    @property
    def ok(self) -> bool:
        return not self.incompatibilities

    def __str__(self) -> str:
        head = f"{self.name} v{self.old_version} -> v{self.new_version} ({self.mode})"
        if self.ok:
            return f"{head}: compatible"
        return "\n".join([f"{head}: incompatible", *(f"  {item}" for item in self.incompatibilities)])


def check_compatibility(
    writer: dict[str, Any],
    reader: dict[str, Any],
    mode: CompatibilityMode | str = CompatibilityMode.BACKWARD,
) -> list[Incompatibility]:
    """Every way ``reader`` (the newer version) and ``writer`` (the older) break ``mode``; empty if none."""
    mode = CompatibilityMode(mode.upper())
    old, new = _Names.of(writer, "old"), _Names.of(reader, "new")
    found: list[Incompatibility] = []
    if mode in (CompatibilityMode.BACKWARD, CompatibilityMode.FULL):
        found += _Resolver(reader=new, writer=old).check()
    if mode in (CompatibilityMode.FORWARD, CompatibilityMode.FULL):
        found += [item for item in _Resolver(reader=old, writer=new).check() if item not in found]
    return found


def check_registry(registry: LocalSchemaRegistry, mode: CompatibilityMode | str) -> list[VersionCheck]:
    """Check every pair of consecutive versions of every schema in ``registry``."""
    mode = CompatibilityMode(mode.upper())
    checks = []
    for name in registry.names():
        versions = registry.versions(name)
        for old, new in zip(versions, versions[1:], strict=False):
            older, newer = registry.get(name, old).schema, registry.get(name, new).schema
            problems = check_compatibility(older, newer, mode)
            checks.append(VersionCheck(name, old, new, mode, tuple(problems)))
    return checks


def ensure_compatible(registry: LocalSchemaRegistry, mode: CompatibilityMode | str) -> None:
    """Raise ``IncompatibleSchemaError`` listing every failing pair of ``check_registry``."""
    failed = [check for check in check_registry(registry, mode) if not check.ok]
    if failed:
        raise IncompatibleSchemaError("\n".join(str(check) for check in failed))


class _Names:
    """One parsed schema and its named types, labelled ``old`` or ``new`` for messages."""

    def __init__(self, root: Any, named: dict[str, Any], label: str) -> None:
        self.root = root
        self.named = named
        self.label = label

    @classmethod
    def of(cls, schema: dict[str, Any], label: str) -> _Names:
        named: dict[str, Any] = {}
        try:
            root = parse_schema(schema, named_schemas=named)
        except Exception as exc:  # fastavro raises several types for bad schemas
            raise InvalidSchemaError(f"the {label} schema is not valid Avro: {exc}") from exc
        return cls(root, named, label)

    def resolve(self, schema: Any) -> Any:
        """Follow named references and ``{"type": ...}`` wrappers down to a definition."""
        while True:
            if isinstance(schema, str) and schema not in _PRIMITIVES:
                schema = self.named[schema]
            elif isinstance(schema, dict) and not _is_complex(schema["type"]):
                schema = schema["type"]
            else:
                return schema


def _is_complex(type_name: Any) -> bool:
    return type_name in _NAMED or type_name in ("array", "map")


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _describe(schema: Any) -> str:
    kind = _kind(schema)
    if kind in _NAMED:
        return f"{kind} {_short(schema['name'])}"
    if kind == "array":
        return f"array of {_describe_ref(schema['items'])}"
    if kind == "map":
        return f"map of {_describe_ref(schema['values'])}"
    if kind == "union":
        return "union [" + ", ".join(_describe_ref(branch) for branch in schema) + "]"
    return kind


def _describe_ref(schema: Any) -> str:
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        return _short(schema)
    if isinstance(schema, dict) and not _is_complex(schema["type"]):
        return _describe_ref(schema["type"])
    return _describe(schema)


class _Resolver:
    """Can ``reader`` read data written with ``writer``? Collects every reason it cannot."""

    def __init__(self, reader: _Names, writer: _Names) -> None:
        self.reader = reader
        self.writer = writer
        self._seen: set[tuple[str, str]] = set()

    def check(self) -> list[Incompatibility]:
        root = self.reader.resolve(self.reader.root)
        path = _short(root["name"]) if _kind(root) in _NAMED else _kind(root)
        return list(self._check(self.reader.root, self.writer.root, path))

    def _check(self, reader: Any, writer: Any, path: str) -> Iterator[Incompatibility]:
        r, w = self.reader.resolve(reader), self.writer.resolve(writer)
        rk, wk = _kind(r), _kind(w)
        key = (r["name"], w["name"]) if rk == wk == "record" else None
        if key is not None and key in self._seen:
            return  # a recursive record already under check further up
        if wk == "union":
            for branch in w:
                yield from self._check(r, branch, path)
        elif rk == "union":
            yield from self._into_union(r, w, path)
        elif rk in _PRIMITIVES or wk in _PRIMITIVES or rk != wk:
            if rk != wk and (wk, rk) not in _PROMOTIONS:
                yield self._type_changed(r, w, path)
        elif key is None:
            yield from self._complex(rk, r, w, path)
        else:
            self._seen.add(key)
            yield from self._complex(rk, r, w, path)
            self._seen.discard(key)

    def _complex(self, kind: str, r: Any, w: Any, path: str) -> Iterator[Incompatibility]:
        if kind in _NAMED and not _same_name(r, w):
            yield self._type_changed(r, w, path)
        elif kind == "record":
            yield from self._record(r, w, path)
        elif kind == "enum":
            yield from self._enum(r, w, path)
        elif kind == "fixed" and r["size"] != w["size"]:
            yield Incompatibility(path, f"fixed size changed: {self._sizes(r, w)}")
        elif kind == "array":
            yield from self._check(r["items"], w["items"], f"{path}[]")
        elif kind == "map":
            yield from self._check(r["values"], w["values"], f"{path}{{}}")

    def _record(self, r: dict[str, Any], w: dict[str, Any], path: str) -> Iterator[Incompatibility]:
        written = {field["name"]: field for field in w["fields"]}
        for field in r["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            source = next((written[name] for name in names if name in written), None)
            where = f"{path}.{field['name']}"
            if source is not None:
                yield from self._check(field["type"], source["type"], where)
            elif "default" not in field:
                yield Incompatibility(
                    where,
                    f"the {self.reader.label} schema requires it (no default) "
                    f"but {self.writer.label} data does not have it",
                )

    def _enum(self, r: dict[str, Any], w: dict[str, Any], path: str) -> Iterator[Incompatibility]:
        missing = [symbol for symbol in w["symbols"] if symbol not in r["symbols"]]
        if missing and "default" not in r:
            yield Incompatibility(
                path,
                f"{self.writer.label} data may hold symbol(s) {', '.join(missing)}, which the "
                f"{self.reader.label} enum {_short(r['name'])} lacks and it has no default",
            )

    def _into_union(self, r: list[Any], w: Any, path: str) -> Iterator[Incompatibility]:
        attempts = [list(self._check(branch, w, path)) for branch in r]
        if any(not problems for problems in attempts):
            return
        same_kind = [
            problems
            for branch, problems in zip(r, attempts, strict=True)
            if _kind(self.reader.resolve(branch)) == _kind(w)
        ]
        if len(same_kind) == 1:
            yield from same_kind[0]  # e.g. ["null", Record] reading a Record: say what is wrong inside
        else:
            yield Incompatibility(
                path,
                f"{self.writer.label} data is {_describe(w)}, which no branch of the "
                f"{self.reader.label} {_describe(r)} can read",
            )

    def _type_changed(self, r: Any, w: Any, path: str) -> Incompatibility:
        return Incompatibility(
            path,
            f"type changed: {self.writer.label} data is {_describe(w)}, "
            f"the {self.reader.label} schema reads {_describe(r)}",
        )

    def _sizes(self, r: dict[str, Any], w: dict[str, Any]) -> str:
        return f"{self.writer.label} {w['size']}, {self.reader.label} {r['size']}"


def _same_name(r: dict[str, Any], w: dict[str, Any]) -> bool:
    accepted = {_short(r["name"]), *(_short(alias) for alias in r.get("aliases", []))}
    return _short(w["name"]) in accepted
