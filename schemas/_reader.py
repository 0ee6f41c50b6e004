"""``compile_reader``: Avro binary straight into models, compiled once per pair of writer and reader schemas.

The generic path has fastavro read a dict and ``_binding.builder`` turn it into models. A reader compiled here
is Python source generated for one pair of schemas: schema resolution (fields added with a default, removed
fields skipped, ``int`` -> ``long`` -> ``float`` -> ``double``, ``string`` <-> ``bytes``, enum symbols, union
branches) is settled while compiling, nested records are read in place, one- and two-byte varints are read
inline, and each model is built as ``builder`` builds it (no validation; ``__dict__``, fields set, extra and
private set through the slots' own setters). The only dict made is each model's own ``__dict__``, in the
model's field order. Timestamps are the datetime of their second (cached) plus a ``timedelta`` from a table.

Damaged data (a truncated or corrupt body, bad UTF-8, an enum or union index out of range, trailing bytes)
raises ``DecodeError`` with the bytes kept, and nothing else. It is a little stricter than fastavro, which reads
something for a boolean byte other than 0 or 1, a negative enum index, a varint beyond 64 bits or an ``int``
beyond 32 bits; and it does not check the UTF-8 of strings it skips. Schemas it does not compile (``fixed``,
logical types other than ``timestamp-millis``, types that do not resolve, nesting Python cannot compile) give
``None``: the codec reads those with fastavro.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from kep.schemas import _read_schema as rs
from kep.schemas import _read_support as rt
from kep.schemas.errors import DecodeError

#: ``read(data) -> model``: the whole record, from the codec's header on, to the end of ``data``.
Reader = Callable[[bytes], Any]
Lines = list[str]

_TRUNCATED = "truncated: the data ends inside the record"
_MAX_LINES = 4000  # past this, nested records are read by functions instead of in place
_RUNTIME: dict[str, Any] = {
    "ZIGZAG": rt.ZIGZAG,
    "LENGTH": rt.LENGTH,
    "BOOLEANS": rt.BOOLEANS,
    "LONG": rt.read_long,
    "INT": rt.read_int,
    "SIZE": rt.read_length,
    "UNION_INDEX": rt.union_index_error,
    "CORRUPT_DATA": rt.Corrupt,
    "FLOAT": struct.Struct("<f").unpack_from,
    "DOUBLE": struct.Struct("<d").unpack_from,
    "SECONDS": rt.SECONDS,
    "SECOND": rt.second,
    "MILLISECONDS": rt.MILLISECONDS,
    "NEW": object.__new__,
    "SET_DICT": rt.set_dict,
    "SET_FIELDS": rt.set_fields,
    "SET_EXTRA": rt.set_extra,
    "SET_PRIVATE": rt.set_private,
    "DEEPCOPY": copy.deepcopy,
}


def compile_reader(
    writer: dict[str, Any], reader: dict[str, Any], model: type[BaseModel], offset: int, name: str
) -> Reader | None:
    """The reader of ``writer`` data (an ``.avsc`` record) as ``model``, whose schema is ``reader``, for bodies
    starting at ``offset`` of the data; ``None`` when the schemas use something it does not compile."""
    for inline in (True, False):
        compiler = _Compiler(inline)
        try:
            source = compiler.module(writer, reader, model, offset)
        except (rs.Unsupported, RecursionError):
            return None
        if inline and source.count("\n") > _MAX_LINES:
            continue
        try:
            code = compile(source, f"<kep reader of {name}>", "exec")
        except (SyntaxError, RecursionError, MemoryError):  # SyntaxError: too many statically nested blocks
            continue
        namespace = {**_RUNTIME, **compiler.constants, "CORRUPT": _corrupt(name), "LEFTOVER": _leftover(name)}
        exec(code, namespace)
        read: Reader = namespace["read"]
        read.__doc__ = source  # what was compiled, for whoever debugs it
        return read
    return None


def _corrupt(name: str) -> Callable[[bytes, BaseException], DecodeError]:
    def corrupt(data: bytes, exc: BaseException) -> DecodeError:
        if isinstance(exc, (IndexError, struct.error)):
            reason = _TRUNCATED
        elif isinstance(exc, rt.Corrupt):
            reason = str(exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return DecodeError(f"corrupt or truncated {name} body ({len(data)} bytes): {reason}", raw=data)

    return corrupt


def _leftover(name: str) -> Callable[[bytes, int], DecodeError]:
    def leftover(data: bytes, pos: int) -> DecodeError:
        size = len(data)
        if pos > size:  # a string or fixed ran past the end
            return DecodeError(f"corrupt or truncated {name} body ({size} bytes): {_TRUNCATED}", raw=data)
        return DecodeError(f"{size - pos} unexpected bytes after the {name} record ({size} bytes)", raw=data)

    return leftover


class _Compiler:
    """Emits the source of ``read(data)``; ``inline`` reads nested records in place, except recursive ones,
    which, like every record when not ``inline``, get a function ``record<n>(data, pos) -> (model, pos)``."""

    def __init__(self, inline: bool) -> None:
        self.inline = inline
        self.constants: dict[str, Any] = {}
        self.functions: Lines = []
        self.records: dict[tuple[int, int, type[BaseModel]], str] = {}
        self.skippers: dict[int, str] = {}
        self.open: set[object] = set()  # records being emitted in place
        self.count = 0

    def module(
        self, writer: dict[str, Any], reader: dict[str, Any], model: type[BaseModel], offset: int
    ) -> str:
        w, r = rs.normalize(writer, None, {}), rs.normalize(reader, None, {})
        if rs.kind_of(w) != "record" or rs.kind_of(r) != "record":
            raise rs.Unsupported("not a record")
        body: Lines = []
        self.read(w, r, model, "event", body, " " * 8)
        lines = [
            "def read(data):",
            f"    pos = {offset}",
            "    try:",
            *body,
            "    except Exception as exc:",
            "        raise CORRUPT(data, exc) from exc",
            "    if pos != len(data):",
            "        raise LEFTOVER(data, pos)",
            "    return event",
            *self.functions,
        ]
        return "\n".join(lines) + "\n"

    def constant(self, value: Any, hint: str) -> str:
        name = self.fresh(hint + "_")
        self.constants[name] = value
        return name

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}{self.count}"

    def read(self, w: Any, r: Any, ann: Any, target: str, out: Lines, ind: str) -> None:
        """Emit code reading a value written as ``w`` into ``target``, as ``r`` (annotation ``ann``)."""
        wk, rk = rs.kind_of(w), rs.kind_of(r)
        if wk == "union":
            self._writer_union(w, r, ann, target, out, ind)
        elif rk == "union":
            branch, branch_ann = rs.pick(w, r, ann)
            self.read(w, branch, branch_ann, target, out, ind)
        elif not rs.matches(w, r):
            raise rs.Unsupported(f"{wk} cannot be read as {rk}")
        elif wk == "record":
            self._record(w, r, ann, target, out, ind)
        elif wk == "enum":
            self._enum(w, r, ann, target, out, ind)
        elif wk in ("array", "map"):
            self._container(w, r, ann, target, out, ind)
        else:
            self._primitive(wk, rk, ann, target, out, ind)

    def _primitive(self, wk: str, rk: str, ann: Any, target: str, out: Lines, ind: str) -> None:
        if wk in ("int", "long"):
            _long(target, out, ind, "INT" if wk == "int" else "LONG")
            if rk in ("float", "double"):
                out.append(f"{ind}{target} = float({target})")
            elif rs.is_datetime(ann):
                out += [
                    f"{ind}s = {target} // 1000",
                    f"{ind}second = SECONDS.get(s)",
                    f"{ind}if second is None:",
                    f"{ind}    second = SECOND(s)",
                    f"{ind}{target} = second + MILLISECONDS[{target} - s * 1000]",
                ]
        elif wk in ("string", "bytes"):
            _size("n", out, ind)
            value = "data[pos:pos + n]"
            if rk == "string":
                value += ".decode()"
            elif wk == "string":
                value += ".decode().encode()"  # as bytes, once its UTF-8 is checked (as fastavro does)
            out += [f"{ind}{target} = {value}", f"{ind}pos += n"]
        elif wk in ("float", "double"):
            out += [f"{ind}{target} = {wk.upper()}(data, pos)[0]", f"{ind}pos += {4 if wk == 'float' else 8}"]
        elif wk == "boolean":
            out += [f"{ind}{target} = BOOLEANS[data[pos]]", f"{ind}pos += 1"]
        elif wk == "null":
            out.append(f"{ind}{target} = None")
        else:
            raise rs.Unsupported(f"reading {wk}")

    def _writer_union(self, w: list[Any], r: Any, ann: Any, target: str, out: Lines, ind: str) -> None:
        index = self.fresh("u")
        _long(index, out, ind, "LONG")
        for i, branch in enumerate(w):
            out.append(f"{ind}{'if' if i == 0 else 'elif'} {index} == {i}:")
            try:
                reader_branch, branch_ann = rs.pick(branch, r, ann)
            except rs.NoMatch as exc:  # an error only when data uses the branch, as with fastavro
                out.append(f"{ind}    raise CORRUPT_DATA({f'union branch {i}: {exc}'!r})")
                continue
            self.read(branch, reader_branch, branch_ann, target, out, ind + "    ")
        out += [f"{ind}else:", f"{ind}    raise UNION_INDEX({index}, {len(w)})"]

    def _enum(
        self, w: dict[str, Any], r: dict[str, Any], ann: Any, target: str, out: Lines, ind: str
    ) -> None:
        enum = rs.enum_of(ann, f"enum {r['name']}")
        members = {member.value: member for member in enum}
        mapping = {}
        for i, symbol in enumerate(w["symbols"]):
            resolved = symbol if symbol in r["symbols"] else r.get("default")
            if resolved in r["symbols"]:
                if resolved not in members:
                    raise rs.Unsupported(f"symbol {resolved} has no member in {enum.__qualname__}")
                mapping[i] = members[resolved]
        symbols = self.constant(rt.Symbols(mapping, w["symbols"], r["name"]), "SYMBOLS")
        _long(target, out, ind, "LONG")
        out.append(f"{ind}{target} = {symbols}[{target}]")

    def _container(
        self, w: dict[str, Any], r: dict[str, Any], ann: Any, target: str, out: Lines, ind: str
    ) -> None:
        kind = w["type"]
        item_ann = rs.item_annotation(ann, kind)
        count, item, key = self.fresh("c"), self.fresh("x"), self.fresh("k")
        inner = ind + "        "
        out.append(f"{ind}{target} = {{}}" if kind == "map" else f"{ind}{target} = []")
        _long(count, out, ind, "LONG")
        out += [f"{ind}while {count}:", f"{ind}    if {count} < 0:", f"{ind}        {count} = -{count}"]
        _long("n", out, ind + "        ", "LONG")  # the block's size in bytes: not needed
        out.append(f"{ind}    for _ in range({count}):")
        if kind == "map":
            _size("n", out, inner)
            out += [f"{inner}{key} = data[pos:pos + n].decode()", f"{inner}pos += n"]
            self.read(w["values"], r["values"], item_ann, item, out, inner)
            out.append(f"{inner}{target}[{key}] = {item}")
        else:
            self.read(w["items"], r["items"], item_ann, item, out, inner)
            out.append(f"{inner}{target}.append({item})")
        _long(count, out, ind + "    ", "LONG")

    def _record(
        self, w: dict[str, Any], r: dict[str, Any], ann: Any, target: str, out: Lines, ind: str
    ) -> None:
        model = rs.model_of(ann, f"record {r['name']}")
        key = (id(w), id(r), model)
        if self.inline and key not in self.open:
            self.open.add(key)
            self._record_body(w, r, model, target, out, ind)
            self.open.discard(key)
            return
        name = self.records.get(key)
        if name is None:
            name = self.records[key] = self.fresh("record")
            body: Lines = []
            self.open.add(key)
            self._record_body(w, r, model, "obj", body, "    ")
            self.open.discard(key)
            self.functions += [f"def {name}(data, pos):", *body, "    return obj, pos"]
        out.append(f"{ind}{target}, pos = {name}(data, pos)")

    def _record_body(
        self, w: dict[str, Any], r: dict[str, Any], model: type[BaseModel], target: str, out: Lines, ind: str
    ) -> None:
        fields = model.model_fields
        if [field["name"] for field in r["fields"]] != list(fields):
            raise rs.Unsupported(f"record {r['name']} does not match {model.__qualname__}")
        by_name = {field["name"]: field for field in r["fields"]}
        by_name.update({alias: f for f in r["fields"] for alias in f["aliases"] if alias not in by_name})
        variables = {field["name"]: self.fresh("f") for field in r["fields"]}
        missing = dict(variables)
        for wf in w["fields"]:
            rf = by_name.get(wf["name"])
            if rf is None or rf["name"] not in missing:
                self.skip(wf["type"], out, ind)
            else:
                variable = missing.pop(rf["name"])
                self.read(wf["type"], rf["type"], fields[rf["name"]].annotation, variable, out, ind)
        for field_name, variable in missing.items():
            rf = by_name[field_name]
            if "default" not in rf:
                raise rs.Unsupported(f"{r['name']}.{field_name} has no default")
            value = rs.default_value(rf["type"], fields[field_name].annotation, rf["default"])
            constant = self.constant(value, "DEFAULT")
            fresh_copy = isinstance(value, (list, dict, BaseModel))  # never shared between events
            out.append(f"{ind}{variable} = {f'DEEPCOPY({constant})' if fresh_copy else constant}")
        values = ", ".join(f"{field_name!r}: {variable}" for field_name, variable in variables.items())
        out += [
            f"{ind}{target} = NEW({self.constant(model, 'MODEL')})",
            f"{ind}SET_DICT({target}, {{{values}}})",
            f"{ind}SET_FIELDS({target}, {self.constant(set(fields), 'FIELDS')})",  # shared, as builder's
            f"{ind}SET_EXTRA({target}, None)",
            f"{ind}SET_PRIVATE({target}, None)",
        ]

    def skip(self, w: Any, out: Lines, ind: str) -> None:
        """Emit code stepping over a value written as ``w`` (a field the reader does not have)."""
        kind = rs.kind_of(w)
        if kind in ("int", "long", "enum"):
            _long("n", out, ind, "LONG")
        elif kind in ("string", "bytes"):
            _size("n", out, ind)
            out.append(f"{ind}pos += n")
        elif kind in ("boolean", "float", "double", "fixed"):
            out.append(f"{ind}pos += {w['size'] if kind == 'fixed' else _SIZES[kind]}")
        elif kind == "union":
            index = self.fresh("u")
            _long(index, out, ind, "LONG")
            for i, branch in enumerate(w):
                out.append(f"{ind}{'if' if i == 0 else 'elif'} {index} == {i}:")
                self.skip(branch, out, ind + "    ")
                out.append(f"{ind}    pass")
            out += [f"{ind}else:", f"{ind}    raise UNION_INDEX({index}, {len(w)})"]
        elif kind in ("array", "map"):
            self._skip_container(w, out, ind)
        elif kind == "record":
            self._skip_record(w, out, ind)

    def _skip_container(self, w: dict[str, Any], out: Lines, ind: str) -> None:
        count, inner = self.fresh("c"), ind + "            "
        _long(count, out, ind, "LONG")
        out += [f"{ind}while {count}:", f"{ind}    if {count} < 0:"]  # a block with its size: jump over it
        _size("n", out, ind + "        ")
        out += [f"{ind}        pos += n", f"{ind}    else:", f"{ind}        for _ in range({count}):"]
        if w["type"] == "map":
            self.skip("string", out, inner)
        self.skip(w["items"] if w["type"] == "array" else w["values"], out, inner)
        out.append(f"{inner}pass")
        _long(count, out, ind + "    ", "LONG")

    def _skip_record(self, w: dict[str, Any], out: Lines, ind: str) -> None:
        key = id(w)
        if self.inline and key not in self.open:
            self.open.add(key)
            for field in w["fields"]:
                self.skip(field["type"], out, ind)
            self.open.discard(key)
            return
        name = self.skippers.get(key)
        if name is None:
            name = self.skippers[key] = self.fresh("skip")
            body: Lines = []
            self.open.add(key)
            for field in w["fields"]:
                self.skip(field["type"], body, "    ")
            self.open.discard(key)
            self.functions += [f"def {name}(data, pos):", *body, "    return pos"]
        out.append(f"{ind}pos = {name}(data, pos)")


_SIZES = {"boolean": 1, "float": 4, "double": 8}


def _long(target: str, out: Lines, ind: str, slow: str) -> None:
    """Emit ``target = <the long at pos>``: one byte from a table, two inline, longer ones by ``slow``."""
    out += [
        f"{ind}{target} = ZIGZAG[data[pos]]",
        f"{ind}if {target} is not None:",
        f"{ind}    pos += 1",
        f"{ind}elif data[pos + 1] < 128:",
        f"{ind}    {target} = data[pos] & 127 | data[pos + 1] << 7",
        f"{ind}    {target} = ({target} >> 1) ^ -({target} & 1)",
        f"{ind}    pos += 2",
        f"{ind}else:",
        f"{ind}    {target}, pos = {slow}(data, pos)",
    ]


def _size(target: str, out: Lines, ind: str) -> None:
    """Emit ``target = <the length at pos>``, never negative."""
    out += [
        f"{ind}{target} = LENGTH[data[pos]]",
        f"{ind}if {target} < 0:",
        f"{ind}    {target}, pos = SIZE(data, pos)",
        f"{ind}else:",
        f"{ind}    pos += 1",
    ]
