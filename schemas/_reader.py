"""``compile_reader``: Avro binary straight into models, compiled once per writer and reader schema pair.

The generic path reads with fastavro into dicts and then turns those into models (``schemas._binding``). A
reader compiled here is Python source generated for one pair of schemas: schema resolution (fields added with
a default, removed fields skipped, ``int`` -> ``long`` -> ``float`` -> ``double``, ``string`` <-> ``bytes``, enum
symbols, union branches) is settled while compiling, nested records are read inline, a one-byte varint is a
table lookup, and the models are built the way ``_binding.builder`` builds them (no validation, the same
``__dict__``, fields set, extra and private). No dict is made but each model's own ``__dict__``. An
``OrderPlaced`` takes less time than fastavro takes to make its dict.

Data that does not fit (a truncated or corrupt body, bad UTF-8, an enum or union index out of range, trailing
bytes) raises ``DecodeError`` with the bytes kept. It is a little stricter than fastavro on corrupt data: a
boolean byte other than 0 or 1, a negative enum or union index, a varint beyond 64 bits and an ``int`` beyond 32
bits are errors, where fastavro reads something. Schemas it does not compile (``fixed``, logical types other
than ``timestamp-millis``, types that do not resolve) get ``None``: the codec reads those with fastavro.
"""

from __future__ import annotations

import copy
import struct
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from schemas import _read_support as rt
from schemas.errors import DecodeError

#: ``read(data) -> model``: the whole record, from the codec's header on, to the end of ``data``.
Reader = Callable[[bytes], Any]

_TRUNCATED = "truncated: the data ends inside the record"
_MAX_LINES = 4000  # past this, nested records become functions instead of being read inline
_BASE = BaseModel.__dict__
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
    "SET_DICT": _BASE["__dict__"].__set__,
    "SET_FIELDS": _BASE["__pydantic_fields_set__"].__set__,
    "SET_EXTRA": _BASE["__pydantic_extra__"].__set__,
    "SET_PRIVATE": _BASE["__pydantic_private__"].__set__,
    "DEEPCOPY": copy.deepcopy,
}


def compile_reader(
    writer: dict[str, Any], reader: dict[str, Any], model: type[BaseModel], offset: int, name: str
) -> Reader | None:
    """The reader of ``writer`` data (an ``.avsc`` record) as ``model``, whose schema is ``reader``, for bodies
    starting at ``offset``; ``None`` when the schemas use something it does not compile."""
    for inline in (True, False):
        compiler = _Compiler(inline)
        try:
            source = compiler.module(writer, reader, model, offset)
        except rt.Unsupported:
            return None
        if inline and source.count("\n") > _MAX_LINES:
            continue
        break
    constants = {**_RUNTIME, **compiler.constants}
    constants["CORRUPT"] = _corrupt_error(name)
    constants["LEFTOVER"] = _leftover_error(name)
    exec(compile(source, f"<kep reader of {name}>", "exec"), constants)  # noqa: S102  (our own source)
    read: Reader = constants["factory"]()
    read.__doc__ = source  # what was compiled, for whoever debugs it
    return read


def _corrupt_error(name: str) -> Callable[[bytes, BaseException], DecodeError]:
    def corrupt(data: bytes, exc: BaseException) -> DecodeError:
        if isinstance(exc, (IndexError, struct.error)):
            reason = _TRUNCATED
        elif isinstance(exc, rt.Corrupt):
            reason = str(exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return DecodeError(f"corrupt or truncated {name} body ({len(data)} bytes): {reason}", raw=data)

    return corrupt


def _leftover_error(name: str) -> Callable[[bytes, int], DecodeError]:
    def leftover(data: bytes, pos: int) -> DecodeError:
        size = len(data)
        if pos > size:
            reason = f"corrupt or truncated {name} body ({size} bytes): {_TRUNCATED}"
            return DecodeError(reason, raw=data)
        return DecodeError(f"{size - pos} unexpected bytes after the {name} record ({size} bytes)", raw=data)

    return leftover


Lines = list[str]


class _Compiler:
    """Emits the reading code; ``inline`` reads nested records in place (recursive ones always get functions)."""

    def __init__(self, inline: bool) -> None:
        self.inline = inline
        self.constants: dict[str, Any] = {}
        self.functions: Lines = []
        self.records: dict[tuple[int, int, Any], str] = {}
        self.skippers: dict[int, str] = {}
        self.open: set[Any] = set()
        self.count = 0

    def module(self, writer: dict[str, Any], reader: dict[str, Any], model: type[BaseModel], offset: int) -> str:
        w = rt.normalize(writer, None, {})
        r = rt.normalize(reader, None, {})
        if rt.kind_of(w) != "record" or rt.kind_of(r) != "record":
            raise rt.Unsupported("not a record")
        body: Lines = []
        self.read(w, r, model, "event", body, " " * 12)
        lines = [
            "def factory():",
            "    def read(data):",
            f"        pos = {offset}",
            "        try:",
            *body,
            "        except Exception as exc:",
            "            raise CORRUPT(data, exc) from exc",
            "        if pos != len(data):",
            "            raise LEFTOVER(data, pos)",
            "        return event",
            *self.functions,
            "    return read",
        ]
        return "\n".join(lines) + "\n"

    def constant(self, value: Any, hint: str) -> str:
        self.count += 1
        name = f"{hint}_{self.count}"
        self.constants[name] = value
        return name

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}{self.count}"

    # reading

    def read(self, w: Any, r: Any, ann: Any, target: str, out: Lines, ind: str) -> None:
        """Emit code reading a value written as ``w`` into ``target``, as ``r`` (annotation ``ann``)."""
        wk, rk = rt.kind_of(w), rt.kind_of(r)
        if wk == "union":
            self._writer_union(w, r, ann, target, out, ind)
        elif rk == "union":
            branch, branch_ann = _pick(w, r, ann)
            self.read(w, branch, branch_ann, target, out, ind)
        elif not rt.matches(w, r):
            raise rt.Unsupported(f"{wk} cannot be read as {rk}")
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
            elif _is_datetime(ann):  # from the datetime of its second (cached) plus the milliseconds
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
                value += ".decode().encode()"  # checks the UTF-8, as fastavro does
            out += [f"{ind}{target} = {value}", f"{ind}pos += n"]
        elif wk in ("float", "double"):
            out += [f"{ind}{target} = {wk.upper()}(data, pos)[0]", f"{ind}pos += {4 if wk == 'float' else 8}"]
        elif wk == "boolean":
            out += [f"{ind}{target} = BOOLEANS[data[pos]]", f"{ind}pos += 1"]
        elif wk == "null":
            out.append(f"{ind}{target} = None")
        else:
            raise rt.Unsupported(f"reading {wk}")

    def _writer_union(self, w: list[Any], r: Any, ann: Any, target: str, out: Lines, ind: str) -> None:
        index = self.fresh("u")
        _long(index, out, ind, "LONG")
        for i, branch in enumerate(w):
            out.append(f"{ind}{'if' if i == 0 else 'elif'} {index} == {i}:")
            try:
                reader_branch, branch_ann = _pick(branch, r, ann)
            except rt.Unsupported as exc:
                out.append(f"{ind}    raise CORRUPT_DATA({f'union branch {i}: {exc}'!r})")
                continue
            self.read(branch, reader_branch, branch_ann, target, out, ind + "    ")
        out += [f"{ind}else:", f"{ind}    raise UNION_INDEX({index}, {len(w)})"]

    def _enum(self, w: dict[str, Any], r: dict[str, Any], ann: Any, target: str, out: Lines, ind: str) -> None:
        tp = _strip(ann)
        if not (isinstance(tp, type) and issubclass(tp, Enum)):
            raise rt.Unsupported(f"enum {r['name']} without an Enum")
        members = {member.value: member for member in tp}
        mapping = {}
        for i, symbol in enumerate(w["symbols"]):
            resolved = symbol if symbol in r["symbols"] else r.get("default")
            if resolved in r["symbols"]:
                if resolved not in members:
                    raise rt.Unsupported(f"symbol {resolved} has no member in {tp.__qualname__}")
                mapping[i] = members[resolved]
        symbols = self.constant(rt.Symbols(mapping, w["symbols"], r["name"]), "SYMBOLS")
        _long(target, out, ind, "LONG")
        out.append(f"{ind}{target} = {symbols}[{target}]")

    def _container(self, w: dict[str, Any], r: dict[str, Any], ann: Any, target: str, out: Lines, ind: str) -> None:
        is_map = w["type"] == "map"
        tp = _strip(ann)
        if tp is not Any and get_origin(tp) is not (dict if is_map else list):
            raise rt.Unsupported(f"{w['type']} for {tp!r}")
        inner_ann = get_args(tp)[-1] if tp is not Any else Any
        count, item, key = self.fresh("c"), self.fresh("x"), self.fresh("k")
        out.append(f"{ind}{target} = {{}}" if is_map else f"{ind}{target} = []")
        inner = ind + "        "
        self._block_loop(count, out, ind)
        if is_map:
            _size("n", out, inner)
            out += [f"{inner}{key} = data[pos:pos + n].decode()", f"{inner}pos += n"]
            self.read(w["values"], r["values"], inner_ann, item, out, inner)
            out.append(f"{inner}{target}[{key}] = {item}")
        else:
            self.read(w["items"], r["items"], inner_ann, item, out, inner)
            out.append(f"{inner}{target}.append({item})")
        _long(count, out, ind + "    ", "LONG")

    def _block_loop(self, count: str, out: Lines, ind: str) -> None:
        """``while count:`` over blocks (a negative count is followed by the block's size) and their items."""
        _long(count, out, ind, "LONG")
        out += [f"{ind}while {count}:", f"{ind}    if {count} < 0:", f"{ind}        {count} = -{count}"]
        _long("n", out, ind + "        ", "LONG")
        out.append(f"{ind}    for _ in range({count}):")

    def _record(self, w: dict[str, Any], r: dict[str, Any], ann: Any, target: str, out: Lines, ind: str) -> None:
        model = _strip(ann)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise rt.Unsupported(f"record {r['name']} without a model")
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
            self._record_body(w, r, model, "obj", body, " " * 8)
            self.open.discard(key)
            self.functions += [f"    def {name}(data, pos):", *body, "        return obj, pos"]
        out.append(f"{ind}{target}, pos = {name}(data, pos)")

    def _record_body(
        self, w: dict[str, Any], r: dict[str, Any], model: type[BaseModel], target: str, out: Lines, ind: str
    ) -> None:
        fields = model.model_fields
        if [field["name"] for field in r["fields"]] != list(fields):
            raise rt.Unsupported(f"record {r['name']} does not match {model.__qualname__}")
        by_name = {field["name"]: field for field in r["fields"]}
        by_name.update({alias: f for f in r["fields"] for alias in f["aliases"] if alias not in by_name})
        names = {field["name"]: self.fresh("f") for field in r["fields"]}
        missing = dict.fromkeys(names)
        for wf in w["fields"]:
            rf = by_name.get(wf["name"])
            if rf is None or rf["name"] not in missing:
                self.skip(wf["type"], out, ind)
                continue
            del missing[rf["name"]]
            self.read(wf["type"], rf["type"], fields[rf["name"]].annotation, names[rf["name"]], out, ind)
        for field_name in missing:
            rf = by_name[field_name]
            if "default" not in rf:
                raise rt.Unsupported(f"{r['name']}.{field_name} has no default")
            try:
                value = _default(rf["type"], fields[field_name].annotation, rf["default"])
            except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as exc:
                raise rt.Unsupported(f"the default of {r['name']}.{field_name}: {exc!r}") from exc
            constant = self.constant(value, "DEFAULT")
            mutable = isinstance(value, (list, dict, BaseModel))
            out.append(f"{ind}{names[field_name]} = {f'DEEPCOPY({constant})' if mutable else constant}")
        model_name = self.constant(model, "MODEL")
        fields_set = self.constant(set(fields), "FIELDS")
        values = ", ".join(f"{field_name!r}: {var}" for field_name, var in names.items())
        out += [
            f"{ind}{target} = NEW({model_name})",
            f"{ind}SET_DICT({target}, {{{values}}})",
            f"{ind}SET_FIELDS({target}, {fields_set})",
            f"{ind}SET_EXTRA({target}, None)",
            f"{ind}SET_PRIVATE({target}, None)",
        ]

    # skipping (writer fields the reader does not have)

    def skip(self, w: Any, out: Lines, ind: str) -> None:
        kind = rt.kind_of(w)
        if kind in ("int", "long", "enum"):
            _long("n", out, ind, "LONG")
        elif kind in ("string", "bytes"):
            _size("n", out, ind)
            out.append(f"{ind}pos += n")
        elif kind in ("boolean", "float", "double", "fixed"):
            size = {"boolean": 1, "float": 4, "double": 8}.get(kind) or w["size"]
            out.append(f"{ind}pos += {size}")
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
        count = self.fresh("c")
        _long(count, out, ind, "LONG")
        out += [f"{ind}while {count}:", f"{ind}    if {count} < 0:"]
        _size("n", out, ind + "        ")
        out += [f"{ind}        pos += n", f"{ind}    else:", f"{ind}        for _ in range({count}):"]
        inner = ind + "            "
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
                self.skip(field["type"], body, " " * 8)
            self.open.discard(key)
            self.functions += [f"    def {name}(data, pos):", *body, "        return pos"]
        out.append(f"{ind}pos = {name}(data, pos)")


def _long(target: str, out: Lines, ind: str, slow: str) -> None:
    """Emit ``target = <the long at pos>``: one byte from the table, two inline, longer ones by ``slow``."""
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
    """Emit ``target = <the length at pos>`` (never negative)."""
    out += [
        f"{ind}{target} = LENGTH[data[pos]]",
        f"{ind}if {target} < 0:",
        f"{ind}    {target}, pos = SIZE(data, pos)",
        f"{ind}else:",
        f"{ind}    pos += 1",
    ]


def _strip(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_datetime(ann: Any) -> bool:
    tp = _strip(ann)
    return isinstance(tp, type) and issubclass(tp, datetime)


def _pick(w: Any, r: Any, ann: Any) -> tuple[Any, Any]:
    """The reader branch (and its annotation) that data of the writer type ``w`` is read as."""
    if rt.kind_of(r) != "union":
        if not rt.matches(w, r):
            raise rt.Unsupported(f"{rt.kind_of(w)} cannot be read as {rt.kind_of(r)}")
        return r, ann
    for branch in r:
        if rt.matches(w, branch):
            return branch, _branch_annotation(ann, branch)
    raise rt.Unsupported(f"{rt.kind_of(w)} is not in the reader's union")


def _branch_annotation(ann: Any, branch: Any) -> Any:
    if branch == "null":
        return None
    tp = _strip(ann)
    if get_origin(tp) is Union or get_origin(tp) is types.UnionType:
        others = [arg for arg in get_args(tp) if arg is not type(None)]
        return others[0] if len(others) == 1 else Any
    return tp


def _default(r: Any, ann: Any, value: Any) -> Any:
    """The model value of a reader field's Avro default (JSON) ``value``."""
    kind = rt.kind_of(r)
    if kind == "union":
        branch = "null" if value is None and "null" in r else next(b for b in r if b != "null")
        return _default(branch, _branch_annotation(ann, branch), value)
    if kind == "record":
        model = _strip(ann)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise rt.Unsupported(f"default of record {r['name']} without a model")
        data = {}
        for field in r["fields"]:
            if field["name"] not in value and "default" not in field:
                raise rt.Unsupported(f"default of {r['name']} lacks {field['name']}")
            item = value.get(field["name"], field.get("default"))
            data[field["name"]] = _default(field["type"], model.model_fields[field["name"]].annotation, item)
        obj = model.__new__(model)
        _RUNTIME["SET_DICT"](obj, data)
        _RUNTIME["SET_FIELDS"](obj, set(model.model_fields))
        _RUNTIME["SET_EXTRA"](obj, None)
        _RUNTIME["SET_PRIVATE"](obj, None)
        return obj
    if kind == "enum":
        members = {member.value: member for member in _strip(ann)}
        return members[value]
    if kind in ("array", "map"):
        inner = get_args(_strip(ann))[-1] if _strip(ann) is not Any else Any
        if kind == "array":
            return [_default(r["items"], inner, item) for item in value]
        return {key: _default(r["values"], inner, item) for key, item in value.items()}
    if kind in ("bytes", "fixed"):
        return value.encode("latin-1")
    if kind in ("float", "double"):
        return float(value)
    if kind in ("int", "long") and _is_datetime(ann):
        return _EPOCH + timedelta(milliseconds=value)
    return value
