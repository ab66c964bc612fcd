"""CEL types and cel-go's standard declarations, as the checker needs them.

The declarations follow cel-go's standard library (common/stdlib/standard.go): every function
with its overloads and result types, and the type identifiers (``int``, ``string``, ``type`` ...)
that a default ``cel.NewEnv`` declares. A default environment filters out the cross-type numeric
comparisons (``uint > int``), so :data:`CROSS_TYPE` lists them for the checker to skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class CelType:
    """A CEL type as the checker sees it: a kind, its parameters, and a name for type params."""

    kind: str  # bool int uint double string bytes null duration timestamp dyn error list map type param
    params: tuple["CelType", ...] = ()
    name: str = ""


BOOL, INT, UINT, DOUBLE = CelType("bool"), CelType("int"), CelType("uint"), CelType("double")
STRING, BYTES, NULL = CelType("string"), CelType("bytes"), CelType("null")
DURATION, TIMESTAMP = CelType("duration"), CelType("timestamp")
DYN, ERROR = CelType("dyn"), CelType("error")
SCALARS = {"bool", "int", "uint", "double", "string", "bytes", "duration", "timestamp"}


def list_of(elem: CelType) -> CelType:
    return CelType("list", (elem,))


def map_of(key: CelType, value: CelType) -> CelType:
    return CelType("map", (key, value))


def type_of(t: CelType | None = None) -> CelType:
    return CelType("type", (t,) if t is not None else ())


def param(name: str) -> CelType:
    return CelType("param", name=name)


DECLARED = {"name": STRING, "node": STRING, "storageType": STRING, "availableSpace": UINT}


def format_type(t: CelType) -> str:
    """cel-go's FormatCelType: how types appear in checker messages."""
    if t.kind == "error":
        return "!error!"
    if t.kind == "param":
        return t.name
    if t.kind == "list":
        return f"list({format_type(t.params[0])})"
    if t.kind == "map":
        return f"map({format_type(t.params[0])}, {format_type(t.params[1])})"
    if t.kind == "type":
        return f"type({format_type(t.params[0])})" if t.params else "type"
    return t.kind


def type_name(t: CelType) -> str:
    """cel-go's ``Type.String()``: how the output type appears in Talos' "expected bool" error."""
    names = {"null": "null_type", "duration": "google.protobuf.Duration",
             "timestamp": "google.protobuf.Timestamp", "error": "*error*"}
    if t.params:
        return f"{t.kind}({', '.join(type_name(p) for p in t.params)})"
    return names.get(t.kind, t.name if t.kind == "param" else t.kind)


# ----------------------------------------------------------------- the standard declarations


@dataclass(frozen=True)
class Overload:
    id: str
    args: tuple[CelType, ...]
    result: CelType
    member: bool = False
    params: tuple[str, ...] = ()


_A, _B = param("A"), param("B")


def _ov(oid: str, args: Iterable[CelType], result: CelType, member: bool = False) -> Overload:
    args = tuple(args)
    used = sorted({p.name for t in (*args, result) for p in _params_in(t)})
    return Overload(oid, args, result, member, tuple(used))


def _params_in(t: CelType) -> Iterable[CelType]:
    if t.kind == "param":
        yield t
    for p in t.params:
        yield from _params_in(p)


def _standard_functions() -> dict[str, list[Overload]]:
    """cel-go's standard library (common/stdlib/standard.go): names, overloads, result types."""
    f: dict[str, list[Overload]] = {}

    def add(name: str, *overloads: Overload) -> None:
        f.setdefault(name, []).extend(overloads)

    add("_?_:_", _ov("conditional", (BOOL, _A, _A), _A))
    add("_&&_", _ov("logical_and", (BOOL, BOOL), BOOL))
    add("_||_", _ov("logical_or", (BOOL, BOOL), BOOL))
    add("!_", _ov("logical_not", (BOOL,), BOOL))
    add("@not_strictly_false", _ov("not_strictly_false", (BOOL,), BOOL))
    add("_==_", _ov("equals", (_A, _A), BOOL))
    add("_!=_", _ov("not_equals", (_A, _A), BOOL))
    add("_+_", _ov("add_bytes", (BYTES, BYTES), BYTES), _ov("add_double", (DOUBLE, DOUBLE), DOUBLE),
        _ov("add_duration_duration", (DURATION, DURATION), DURATION),
        _ov("add_duration_timestamp", (DURATION, TIMESTAMP), TIMESTAMP),
        _ov("add_timestamp_duration", (TIMESTAMP, DURATION), TIMESTAMP),
        _ov("add_int64", (INT, INT), INT), _ov("add_list", (list_of(_A), list_of(_A)), list_of(_A)),
        _ov("add_string", (STRING, STRING), STRING), _ov("add_uint64", (UINT, UINT), UINT))
    for op, name in (("_/_", "divide"), ("_*_", "multiply")):
        add(op, _ov(f"{name}_double", (DOUBLE, DOUBLE), DOUBLE), _ov(f"{name}_int64", (INT, INT), INT),
            _ov(f"{name}_uint64", (UINT, UINT), UINT))
    add("_%_", _ov("modulo_int64", (INT, INT), INT), _ov("modulo_uint64", (UINT, UINT), UINT))
    add("-_", _ov("negate_double", (DOUBLE,), DOUBLE), _ov("negate_int64", (INT,), INT))
    add("_-_", _ov("subtract_double", (DOUBLE, DOUBLE), DOUBLE),
        _ov("subtract_duration_duration", (DURATION, DURATION), DURATION),
        _ov("subtract_int64", (INT, INT), INT),
        _ov("subtract_timestamp_duration", (TIMESTAMP, DURATION), TIMESTAMP),
        _ov("subtract_timestamp_timestamp", (TIMESTAMP, TIMESTAMP), DURATION),
        _ov("subtract_uint64", (UINT, UINT), UINT))
    numeric = {"int64": INT, "uint64": UINT, "double": DOUBLE}
    for op, name in (("_<_", "less"), ("_<=_", "less_equals"), ("_>_", "greater"), ("_>=_", "greater_equals")):
        overloads = [_ov(f"{name}_bool", (BOOL, BOOL), BOOL)]
        for left, lt in numeric.items():
            for right, rt in numeric.items():
                suffix = left if left == right else f"{left}_{right}"
                overloads.append(_ov(f"{name}_{suffix}", (lt, rt), BOOL))
        for kind, t in (("string", STRING), ("bytes", BYTES), ("timestamp", TIMESTAMP), ("duration", DURATION)):
            overloads.append(_ov(f"{name}_{kind}", (t, t), BOOL))
        add(op, *overloads)
    add("_[_]", _ov("index_list", (list_of(_A), INT), _A), _ov("index_map", (map_of(_A, _B), _A), _B))
    add("@in", _ov("in_list", (_A, list_of(_A)), BOOL), _ov("in_map", (_A, map_of(_A, _B)), BOOL))
    for kind, t in (("bytes", BYTES), ("list", list_of(_A)), ("map", map_of(_A, _B)), ("string", STRING)):
        add("size", _ov(f"size_{kind}", (t,), INT), _ov(f"{kind}_size", (t,), INT, member=True))
    add("type", _ov("type", (_A,), type_of(_A)))
    add("dyn", _ov("to_dyn", (_A,), DYN))
    conversions = {
        "bool": (BOOL, (BOOL, STRING)), "bytes": (BYTES, (BYTES, STRING)),
        "double": (DOUBLE, (DOUBLE, INT, STRING, UINT)), "duration": (DURATION, (DURATION, INT, STRING)),
        "int": (INT, (INT, DOUBLE, DURATION, STRING, TIMESTAMP, UINT)),
        "string": (STRING, (STRING, BOOL, BYTES, DOUBLE, DURATION, INT, TIMESTAMP, UINT)),
        "timestamp": (TIMESTAMP, (TIMESTAMP, INT, STRING)), "uint": (UINT, (UINT, DOUBLE, INT, STRING)),
    }
    for name, (result, sources) in conversions.items():
        add(name, *(_ov(f"{s.kind}_to_{name}", (s,), result) for s in sources))
    for name in ("contains", "endsWith", "startsWith"):
        add(name, _ov(f"{name}_string", (STRING, STRING), BOOL, member=True))
    add("matches", _ov("matches", (STRING, STRING), BOOL), _ov("matches_string", (STRING, STRING), BOOL, member=True))
    for name in ("getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek"):
        add(name, _ov(f"timestamp_{name}", (TIMESTAMP,), INT, member=True),
            _ov(f"timestamp_{name}_with_tz", (TIMESTAMP, STRING), INT, member=True))
    for name in ("getHours", "getMinutes", "getSeconds", "getMilliseconds"):
        add(name, _ov(f"timestamp_{name}", (TIMESTAMP,), INT, member=True),
            _ov(f"timestamp_{name}_with_tz", (TIMESTAMP, STRING), INT, member=True),
            _ov(f"duration_{name}", (DURATION,), INT, member=True))
    return f


FUNCTIONS = _standard_functions()
# A default cel.NewEnv leaves cross-type numeric comparisons off: these overloads are filtered out.
CROSS_TYPE = {o.id for op in ("_<_", "_<=_", "_>_", "_>=_") for o in FUNCTIONS[op]
               if o.args[0] != o.args[1] and o.args[0] in (INT, UINT, DOUBLE)}
# The standard type identifiers (stdlib TypeVariable): each is a value of type type(T).
TYPE_IDENTS = {"bool": BOOL, "bytes": BYTES, "double": DOUBLE, "google.protobuf.Duration": DURATION,
               "int": INT, "list": list_of(_A), "map": map_of(_A, _B), "null_type": NULL, "string": STRING,
               "google.protobuf.Timestamp": TIMESTAMP, "type": type_of(), "uint": UINT}
RESERVED = {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop",
            "package", "namespace", "return", "var", "void", "while"}
MACROS = {("has", False, 1), ("all", True, 2), ("exists", True, 2), ("exists_one", True, 2),
          ("map", True, 2), ("map", True, 3), ("filter", True, 2)}
