"""How omnictl prints resources: ``-o yaml``, ``-o json`` and the table.

YAML is written the way go-yaml writes it: 4-space indentation, metadata scalars untyped (plain
when libyaml allows it, else quoted), spec strings quoted when plain text would read back as
another type, multi-line strings in literal style. JSON is what omnictl makes of its own YAML:
re-read, keys sorted, 4-space indentation, Go's escaping. A table cell is ``fmt.Sprint`` of the
spec field its column names.

Like :mod:`.omnictl`, this module imports only the standard library's lightest modules.
"""

from __future__ import annotations

import json
import re

from .go_format import format_float, go_json, go_sprint
from .omni_resources import Resource, ResourceType

# --------------------------------------------------------------------- YAML as go-yaml writes it

_INDICATORS = set("#,[]{}&*!|>'\"%@`")
_NULLS = ("", "~", "null", "Null", "NULL")
_OLD_BOOLS = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"}
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}(?:(?:[Tt]|[ \t]+)\d{1,2}:\d{2}:\d{2}(?:\.\d*)?"
                        r"(?:[ \t]*(?:Z|[-+]\d{1,2}(?::\d{2})?))?)?$")
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


def _resolve(text: str) -> tuple[str, object]:
    """How go-yaml resolves a plain scalar: (tag, value), tag one of null bool int float timestamp str."""
    if text in _NULLS:
        return "null", None
    if text in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return "bool", text[0] in "tT"
    if text in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"):
        return "float", float("inf")
    if text in ("-.inf", "-.Inf", "-.INF"):
        return "float", float("-inf")
    if text in (".nan", ".NaN", ".NAN"):
        return "float", float("nan")
    if text[:1] in "+-.0123456789":
        plain = text.replace("_", "")
        number = _parse_go_int(plain)
        if number is not None:
            return "int", number
        if _FLOAT.match(plain):
            return "float", float(plain)
        if _TIMESTAMP.match(text):
            return "timestamp", text  # go-yaml hands a timestamp to an interface{} as its text
    return "str", text


def _parse_go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64) (wider, which does not matter here): sign, 0x, 0o, 0b, 0-octal."""
    sign, body = (text[0], text[1:]) if text[:1] in "+-" else ("", text)
    try:
        if body[:2] in ("0x", "0X"):
            value = int(body[2:], 16)
        elif body[:2] in ("0o", "0O"):
            value = int(body[2:], 8)
        elif body[:2] in ("0b", "0B"):
            value = int(body[2:], 2)
        elif len(body) > 1 and body[0] == "0":
            value = int(body[1:], 8)
        elif body.isdigit():
            value = int(body)
        else:
            return None
    except ValueError:
        return None
    return -value if sign == "-" else value


def _is_printable(ch: str) -> bool:
    o = ord(ch)
    return (o == 0x0A or 0x20 <= o <= 0x7E or o == 0x85 or 0xA0 <= o <= 0xD7FF
            or (0xE000 <= o <= 0xFFFD and o != 0xFEFF) or 0x10000 <= o <= 0x10FFFF)


def _plain_allowed(s: str) -> bool:
    """libyaml's analysis of a scalar for the plain style in block context."""
    if not s or s.startswith(("---", "...")):
        return False
    if s[0] in " \t" or s[-1] in " \t" or "\n" in s:
        return False
    if s[0] in _INDICATORS or (s[0] in "-?:" and (len(s) == 1 or s[1] in " \t")):
        return False
    if ": " in s or " #" in s or "\t#" in s or s.endswith(":"):
        return False
    return all(_is_printable(ch) for ch in s)


def _single_allowed(s: str) -> bool:
    return all(_is_printable(ch) for ch in s) and "\n" not in s


_ESCAPES = {"\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
            "\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\", "\x85": "\\N", "\xa0": "\\_",
            "\u2028": "\\L", "\u2029": "\\P"}


def _double_quoted(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _is_printable(ch) and ch != "\ufeff":
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02X}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(f"\\U{ord(ch):08X}")
    return '"' + "".join(out) + '"'


def _untyped_scalar(s: str, *, key: bool = False) -> str:
    """An untagged scalar (metadata): plain when libyaml allows it, else quoted."""
    if s == "" and not key:
        return ""
    if _plain_allowed(s):
        return s
    if _single_allowed(s):
        return "'" + s.replace("'", "''") + "'"
    return _double_quoted(s)


def _typed_string(s: str, *, key: bool = False) -> str:
    """A string field (spec): quoted when plain text would read back as something else."""
    if _resolve(s)[0] != "str" or s in _OLD_BOOLS or _BASE60.match(s):
        return _double_quoted(s)
    return _untyped_scalar(s, key=key)


def _yaml_float(f: float) -> str:
    text = format_float(f)
    return {"NaN": ".nan", "+Inf": ".inf", "-Inf": "-.inf"}.get(text, text)


def _typed_scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _yaml_float(value)
    return _typed_string(str(value))


def _literal_ok(s: str) -> bool:
    lines = s.split("\n")
    return all(_is_printable(ch) for ch in s) and not any(line.endswith((" ", "\t")) for line in lines)


def _literal(s: str, col: int) -> list[str]:
    """A multi-line string in literal style: the header and the indented content lines."""
    hint = "4" if s[:1] in (" ", "\n") else ""
    chomp = "-" if not s.endswith("\n") else ("+" if s == "\n" or s.endswith("\n\n") else "")
    body = s[:-1] if s.endswith("\n") else s
    lines = [(" " * col + line) if line else "" for line in body.split("\n")]
    return ["|" + hint + chomp] + lines


def _yaml_value(key_text: str, value: object, col: int, out: list[str], untyped: bool) -> None:
    """``key: value`` at column ``col`` (``key_text`` already rendered, "- " for sequence items)."""
    sep = "" if key_text.endswith("- ") else " "
    head = " " * col + key_text
    if isinstance(value, (dict, list)) and value:
        render = _yaml_mapping if isinstance(value, dict) else _yaml_sequence
        if key_text.endswith("- "):
            render(value, col + 2, out, untyped, first_prefix=head)
        else:
            out.append(head)
            render(value, col + 4, out, untyped)
    elif isinstance(value, dict):
        out.append(head + sep + "{}")
    elif isinstance(value, list):
        out.append(head + sep + "[]")
    elif isinstance(value, str) and "\n" in value and not untyped and _literal_ok(value):
        header, *lines = _literal(value, col + 4)
        out.append(head + sep + header)
        out.extend(lines)
    else:
        text = _untyped_scalar(value) if untyped else _typed_scalar(value)
        out.append(head + sep + text if text else head.rstrip())


def _yaml_mapping(mapping: dict, col: int, out: list[str], untyped: bool, first_prefix: str = "") -> None:
    for i, (key, value) in enumerate(mapping.items()):
        key_text = (_untyped_scalar(str(key), key=True) if untyped else _typed_string(str(key), key=True)) + ":"
        start = len(out)
        _yaml_value(key_text, value, col, out, untyped)
        if i == 0 and first_prefix:
            out[start] = first_prefix + out[start][col:]


def _yaml_sequence(items: list, col: int, out: list[str], untyped: bool, first_prefix: str = "") -> None:
    for i, item in enumerate(items):
        start = len(out)
        _yaml_value("- ", item, col, out, untyped)
        if i == 0 and first_prefix:
            out[start] = first_prefix + out[start][col:]


def to_yaml(resource: Resource) -> str:
    """One resource as ``omnictl get -o yaml`` prints it (without the ``---`` separator)."""
    out: list[str] = ["metadata:"]
    _yaml_mapping(resource.metadata, 4, out, untyped=True)
    _yaml_value("spec:", resource.spec, 0, out, untyped=False)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- JSON as omnictl writes it


def _untyped_value(s: str):
    """What an untyped metadata scalar becomes when omnictl re-reads its own YAML."""
    return _resolve(s)[1] if s == "" or _plain_allowed(s) else s


def _json_float(f: float) -> str:
    """A float64 as encoding/json writes it: 1e6 -> 1000000, 1e-7 -> 1e-7 (NaN/Inf are not JSON)."""
    if f != f or f in (float("inf"), float("-inf")):
        return "null"
    if abs(f) < 1e21 and f == int(f):
        return str(int(f))
    if 1e-6 <= abs(f) < 1e21:
        from decimal import Decimal  # rare: the lab's resources hold few floats

        return format(Decimal(repr(f)), "f")
    mantissa, _, exp = repr(f).partition("e")
    return f"{mantissa}e{exp[0]}{int(exp[1:])}"


def _json(value: object, level: int) -> str:
    """Go's json.Encoder with SetIndent("", "    ") over a map read back from YAML (keys sorted)."""
    pad = "    "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad * (level + 1)}{go_json(str(k))}: {_json(v, level + 1)}"
                 for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
        return "{\n" + ",\n".join(items) + "\n" + pad * level + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        items = [pad * (level + 1) + _json(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad * level + "]"
    if value is None or isinstance(value, (bool, int)):
        return json.dumps(value)
    if isinstance(value, float):
        return _json_float(value)
    return go_json(str(value))


def to_json(resource: Resource) -> str:
    """One resource as ``omnictl get -o json`` prints it: sorted keys, 4-space indent, a newline."""
    meta: dict[str, object] = {}
    for key, value in resource.metadata.items():
        if isinstance(value, dict):
            meta[key] = {k: _untyped_value(v) for k, v in value.items()}
        elif isinstance(value, list):
            meta[key] = [_untyped_value(v) for v in value]
        else:
            meta[key] = _untyped_value(str(value))
    return _json({"metadata": meta, "spec": resource.spec}, 0) + "\n"


# ------------------------------------------------------------------------------------- tables


def cell(spec: object, path: str) -> str:
    """The table cell of a spec field (``health.connected``): fmt.Sprint of it, empty when missing."""
    value = spec
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""  # jsonpath with AllowMissingKeys
        value = value[part]
    return go_sprint(value)


def table_header(rtype: ResourceType) -> list[str]:
    return ["NAMESPACE", "TYPE", "ID", "VERSION"] + [header for header, _ in rtype.columns]


def table_row(resource: Resource) -> list[str]:
    row = [resource.namespace, resource.rtype.display, resource.id, resource.version]
    return row + [cell(resource.spec, path) for _, path in resource.rtype.columns]

