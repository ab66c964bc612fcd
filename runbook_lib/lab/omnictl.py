"""The lab twin's stand-in for ``omnictl``: prints what the real one prints, for the twin's state.

Run as ``python -m runbook_lib.lab.omnictl --state STATE.json --log REQUESTS.jsonl [omnictl args]``
(the twin's ``bin/omnictl`` script execs this). ``STATE.json`` is the ``omnictl`` mapping of the
scenario plus ``now`` and ``omni_url``::

    {"error": null | "unauthenticated" | "permission_denied" | "unavailable" | "x509" | "too_old"
              | "too_new" | "no_context",
     "hang": false, "resources": {"<Type>/<id>": {"metadata": {...}, "spec": {...}}},
     "now": 1795770000, "omni_url": "https://127.0.0.1:PORT"}

What is reproduced (research notes, omni.md section 4): ``get`` with its flags; the table, YAML
and JSON shapes (YAML with 4-space indentation and ``---`` between documents; JSON re-encoded from
the YAML with sorted keys, 4-space indentation and objects simply concatenated); metadata defaults;
the error lines on stderr with exit status 1; ``infraprovider list``. Every invocation appends one
line to the request log, ``write`` set for commands that would change Omni. Commands that change
Omni are recognised and logged but not simulated.

This runs once per omnictl call, so it imports only the standard library's lightest modules.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time

CLIENT_VERSION = "v1.3.0"
GROUP = "omni.sidero.dev"

# ------------------------------------------------------------------------------ resource types

# plural type name, default namespace, table columns (header, dotted path into the spec)
_TYPES = (
    ("InfraProviders", "infra-provider", ()),
    ("InfraProviderStatuses", "infra-provider", (("NAME", "name"), ("DESCRIPTION", "description"),
                                                 ("VERSION", "version"))),
    ("InfraProviderHealthStatuses", "infra-provider-ephemeral", (("LAST HEARTBEAT TIMESTAMP", "lastheartbeattimestamp"),
                                                                 ("ERROR", "error"))),
    ("InfraProviderCombinedStatuses", "ephemeral", (("NAME", "name"), ("DESCRIPTION", "description"),
                                                    ("VERSION", "version"), ("CONNECTED", "health.connected"))),
    ("MachineClasses", "default", ()),
    ("MachineRequestSets", "default", (("PROVIDERID", "providerid"), ("MACHINECOUNT", "machinecount"))),
    ("MachineRequestSetStatuses", "default", ()),
    ("MachineRequests", "infra-provider", (("TALOS VERSION", "talosversion"),)),
    ("MachineRequestStatuses", "infra-provider", ()),
    ("ClusterMachineRequestStatuses", "default", (("STAGE", "stage"),)),
    ("Machines", "default", (("ADDRESS", "managementaddress"), ("CONNECTED", "connected"))),
    ("MachineStatuses", "default", ()),
    ("Links", "default", (("CONNECTED", "connected"), ("LASTENDPOINT", "lastendpoint"))),
    ("LinkStatuses", "ephemeral", ()),
    ("Clusters", "default", (("TALOS VERSION", "talosversion"), ("KUBERNETES VERSION", "kubernetesversion"))),
    ("ClusterStatuses", "default", (("AVAILABLE", "available"), ("PHASE", "phase"), ("MACHINES", "machines.total"),
                                    ("HEALTHY", "machines.healthy"))),
    ("ClusterMachineStatuses", "default", (("READY", "ready"), ("STAGE", "stage"))),
    ("MachineSets", "default", ()),
    ("MachineSetStatuses", "default", ()),
    ("ControlPlaneStatuses", "default", ()),
)


class ResourceType:
    """One resource definition: full type, default namespace, display type, columns and aliases."""

    def __init__(self, full: str, namespace: str, columns: tuple = ()):
        self.type = full
        self.namespace = namespace
        self.columns = columns
        plural, _, suffix = full.partition(".")
        self.display = _singular(plural)
        aliases = {full.lower(), plural.lower(), self.display.lower()}
        parts = suffix.split(".") if suffix else []
        for n in range(1, len(parts)):  # machinestatuses.omni, machinestatuses.omni.sidero
            aliases.add(".".join([plural] + parts[:n]).lower())
        capitals = "".join(c for c in self.display if c.isupper()).lower()
        if len(capitals) >= 2:
            aliases.add(capitals)
            if not capitals.endswith("s"):
                aliases.add(capitals + "s")
        self.aliases = aliases


def _singular(plural: str) -> str:
    if plural.endswith(("sses", "uses")):
        return plural[:-2]
    return plural[:-1] if plural.endswith("s") else plural


class UsageError(Exception):
    """An error omnictl reports as ``Error: <message>`` with exit status 1."""


class Registry:
    """The resource definitions omnictl can resolve: the known ones plus any type the state holds."""

    def __init__(self) -> None:
        self.types = [ResourceType(f"{plural}.{GROUP}", ns, cols) for plural, ns, cols in _TYPES]

    def lookup(self, name: str) -> list[ResourceType]:
        key = name.lower()
        return [t for t in self.types if key in t.aliases]

    def resolve(self, name: str) -> ResourceType:
        found = self.lookup(name)
        if not found:
            raise UsageError(f'resource "{name}" is not registered')
        if len(found) > 1:
            names = " ".join(sorted(t.type for t in found))
            raise UsageError(f'resource type "{name}" is ambiguous: [{names}]')
        return found[0]

    def ensure(self, name: str, namespace: str) -> ResourceType:
        """The type a state key names, registering it when omnictl would not know it otherwise."""
        found = self.lookup(name)
        if len(found) > 1:
            raise UsageError(f"lab omnictl: the state names resources of the ambiguous type {name!r}")
        if found:
            return found[0]
        rtype = ResourceType(name, namespace or "default")
        self.types.append(rtype)
        return rtype


# --------------------------------------------------------------------------------------- state


class Resource:
    """One resource as Omni stores it: its type, metadata (untyped scalars) and spec."""

    def __init__(self, rtype: ResourceType, rid: str, raw: dict, now: float):
        meta = dict(raw.get("metadata") or {})
        self.rtype, self.id = rtype, rid
        self.namespace = str(meta.get("namespace") or rtype.namespace)
        self.version = _untyped(meta.get("version", 1))
        self.phase = _untyped(meta.get("phase", "running"))
        self.labels = {str(k): _untyped(v) for k, v in sorted((meta.get("labels") or {}).items())}
        self.annotations = {str(k): _untyped(v) for k, v in sorted((meta.get("annotations") or {}).items())}
        stamp = _rfc3339(now)
        self.metadata: dict[str, object] = {
            "namespace": self.namespace, "type": rtype.type, "id": rid, "version": self.version,
            "owner": _untyped(meta.get("owner", "")), "phase": self.phase,
            "created": _timestamp(meta.get("created"), stamp), "updated": _timestamp(meta.get("updated"), stamp),
        }
        if self.labels:
            self.metadata["labels"] = self.labels
        if self.annotations:
            self.metadata["annotations"] = self.annotations
        finalizers = [_untyped(f) for f in meta.get("finalizers") or []]
        if finalizers:
            self.metadata["finalizers"] = finalizers
        spec = raw.get("spec")
        self.spec = {} if spec is None else spec


def load_resources(state: dict, registry: Registry) -> list[Resource]:
    now = float(state.get("now") or time.time())
    out = []
    for key, raw in (state.get("resources") or {}).items():
        type_name, sep, rid = str(key).partition("/")
        if not sep or not rid:
            raise UsageError(f"lab omnictl: resource key {key!r} is not '<type>/<id>'")
        raw = raw or {}
        rtype = registry.ensure(type_name, (raw.get("metadata") or {}).get("namespace"))
        out.append(Resource(rtype, rid, raw, now))
    return out


def _untyped(value: object) -> str:
    """A metadata value as the text Omni keeps (metadata scalars are strings, written untyped)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _timestamp(value: object, default: str) -> str:
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _rfc3339(value)
    # a YAML timestamp that went through Python's datetime and str(): 2026-02-13 09:00:00+00:00
    m = _PY_DATETIME.match(str(value))
    return f"{m.group(1)}T{m.group(2)}Z" if m else str(value)


_PY_DATETIME = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)\+00:00$")


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


def _go_float(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64), which go-yaml and fmt's %v use."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    from decimal import Decimal  # only reached for floats, which the lab's state rarely holds

    sign, digits, exponent = Decimal(repr(f)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp10 = len(text) + exponent - 1
    minus = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return minus + format(abs(Decimal(repr(f))).normalize(), "f")


def _yaml_float(f: float) -> str:
    text = _go_float(f)
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
    if isinstance(value, dict) and value:
        if key_text.endswith("- "):
            _yaml_mapping(value, col + 2, out, untyped, first_prefix=head)
        else:
            out.append(head)
            _yaml_mapping(value, col + 4, out, untyped)
    elif isinstance(value, list) and value:
        if key_text.endswith("- "):
            _yaml_sequence(value, col + 2, out, untyped, first_prefix=head)
        else:
            out.append(head)
            _yaml_sequence(value, col + 4, out, untyped)
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


def _json_string(s: str) -> str:
    # Go's encoder also escapes HTML-significant characters and the JavaScript line separators
    text = json.dumps(s, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


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
        items = [f"{pad * (level + 1)}{_json_string(str(k))}: {_json(v, level + 1)}"
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
    return _json_string(str(value))


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


def _go_format(value: object) -> str:
    """fmt.Sprint of a value read from YAML: what a table cell shows."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_format(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    return str(value)


def _cell(spec: object, path: str) -> str:
    value = spec
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""  # jsonpath with AllowMissingKeys
        value = value[part]
    return _go_format(value)


def tabulate(rows: list[list[str]], padding: int = 3) -> str:
    """Go's tabwriter with minwidth 0 and padding 3: every cell but a line's last is padded."""
    widths: list[int] = []
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            if i == len(widths):
                widths.append(0)
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i] + padding) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else ""))
    return "".join(line + "\n" for line in lines)


def table_header(rtype: ResourceType) -> list[str]:
    return ["NAMESPACE", "TYPE", "ID", "VERSION"] + [header for header, _ in rtype.columns]


def table_row(resource: Resource) -> list[str]:
    row = [resource.namespace, resource.rtype.display, resource.id, resource.version]
    return row + [_cell(resource.spec, path) for _, path in resource.rtype.columns]


# ----------------------------------------------------------------------------------- selectors

_SELECTOR_TOKEN = re.compile(r"\s*(==|!=|>=|<=|[=!<>(),]|[^\s=!<>(),]+)")


def parse_selector(text: str) -> list[tuple[str, str, list[str], bool]]:
    """Omni's label query syntax: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``,
    ``k notin (a)``, ``k<n`` ... as (key, op, values, invert) terms."""
    tokens = [t for t in _SELECTOR_TOKEN.findall(text) if t]
    terms, i = [], 0

    def take() -> str:
        nonlocal i
        i += 1
        return tokens[i - 1] if i <= len(tokens) else ""

    def peek() -> str:
        return tokens[i] if i < len(tokens) else ""

    while i < len(tokens):
        invert = peek() == "!"
        if invert:
            take()
        key = take()
        if not key or key in "=!<>(),":
            raise UsageError(f"unable to parse term: found '{key}', expected: identifier")
        if peek() in ("", ","):
            terms.append((key, "exists", [], invert))
        elif invert:
            raise UsageError("unable to parse term: expected EOF or ',', found identifier")
        else:
            op = take()
            if op in ("in", "notin"):
                if take() != "(":
                    raise UsageError("unable to parse term: found '' expected: '('")
                values = []
                while peek() not in (")", ""):
                    value = take()
                    if value != ",":
                        values.append(value)
                if take() != ")":
                    raise UsageError("unable to parse term: found '', expected: ')'")
                terms.append((key, "in", sorted(set(values)) or [""], op == "notin"))
            elif op in ("=", "==", "!="):
                value = "" if peek() in ("", ",") else take()
                terms.append((key, "=", [value], op == "!="))
            elif op in ("<", "<=", ">", ">="):
                terms.append((key, {"<": "<", ">=": "<", "<=": "<=", ">": "<="}[op], [take()], op in (">", ">=")))
            else:
                raise UsageError(f"unable to parse term: found '{op}', expected: ==, =, !=, >=, >, in, notin, <=, <")
        separator = take()
        if separator not in ("", ","):
            raise UsageError(f"found '{separator}', expected: ',' or 'end of string'")
    return terms


def matches(labels: dict[str, str], terms: list) -> bool:
    for key, op, values, invert in terms:
        present = key in labels
        if op == "exists":
            ok = present
        elif op in ("=", "in"):
            ok = present and labels[key] in values
        else:
            try:
                have, want = float(labels[key]), float(values[0])
                ok = have < want if op == "<" else have <= want
            except (KeyError, ValueError):
                ok = False
        if ok == invert:
            return False
    return True


# -------------------------------------------------------------------------------- command line

# omnictl's global flags and get's own (other commands are not simulated, so their flags need not be known)
_VALUE_FLAGS = {"--context", "--omniconfig", "--siderov1-keys-dir",
                "--namespace", "--output", "--selector", "--id-match-regexp"}
_BOOL_FLAGS = {"--insecure-skip-tls-verify", "--help", "--version", "--watch"}
_SHORT = {"-n": "--namespace", "-o": "--output", "-l": "--selector", "-w": "--watch", "-h": "--help",
          "-v": "--version"}
# commands (first word, or first two) that change Omni
_WRITES = {("apply",), ("delete",), ("edit",), ("infraprovider", "create"),
           ("infraprovider", "c"), ("infraprovider", "delete"), ("infraprovider", "d"),
           ("infraprovider", "renewkey"), ("infraprovider", "r"), ("serviceaccount", "create"),
           ("serviceaccount", "destroy"), ("serviceaccount", "renew"), ("user", "create"), ("user", "delete"),
           ("user", "set-role"), ("cluster", "delete"), ("cluster", "template", "sync"),
           ("cluster", "template", "delete"), ("cluster", "kubernetes", "upgrade"), ("machine", "lock"),
           ("machine", "unlock")}
_ALIASES = {"g": "get", "ip": "infraprovider", "sa": "serviceaccount", "l": "list"}
_KNOWN = {"get", "apply", "delete", "edit", "infraprovider", "serviceaccount", "user", "cluster", "machine",
          "config", "kubeconfig", "talosconfig", "download", "audit-log", "machine-logs", "support", "completion",
          "help", "version"}


class Invocation:
    """An omnictl command line split into words and flags, pflag style."""

    def __init__(self, args: list[str]):
        self.words: list[str] = []
        self.flags: dict[str, str] = {}
        self.unknown: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                self.words.extend(args[i:])
                break
            if not arg.startswith("-") or arg == "-":
                self.words.append(arg)
                continue
            name, eq, value = arg.partition("=")
            if not name.startswith("--") and len(name) > 2:  # -ojson
                name, eq, value = name[:2], "=", arg[2:].lstrip("=")
            name = _SHORT.get(name, name)
            if name in _VALUE_FLAGS:
                if not eq:
                    if i >= len(args):
                        short = next((s for s, long in _SHORT.items() if long == name and arg == s), None)
                        raise UsageError(f"flag needs an argument: '{short[1]}' in {short}" if short
                                         else f"flag needs an argument: {name}")
                    value = args[i]
                    i += 1
                self.flags[name] = value
            elif name in _BOOL_FLAGS:
                self.flags[name] = value or "true"
            else:
                self.unknown.append(arg)
        self.command = [_ALIASES.get(w, w) if n < 2 else w for n, w in enumerate(self.words)]


def command_words(args: list[str]) -> list[str]:
    """The command words of an argument list, even one omnictl would reject."""
    try:
        return Invocation(args).command
    except UsageError:
        return [a for a in args if not a.startswith("-")]


def is_write(args: list[str]) -> bool:
    words = command_words(args)
    return any(tuple(words[:len(w)]) == w for w in _WRITES)


# ----------------------------------------------------------------------------------- the errors


def connection_error(state: dict, inv: Invocation) -> str | None:
    """The error an unhealthy Omni connection gives, before any command runs (None: healthy)."""
    mode = state.get("error")
    if not mode:
        return None
    if mode == "unauthenticated":
        return "rpc error: code = Unauthenticated desc = invalid signature"
    if mode == "permission_denied":
        return 'rpc error: code = PermissionDenied desc = unauthorized: access denied: insufficient role: "Reader"'
    if mode == "unavailable":
        return ("rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: "
                f"dial tcp {_dial_address(state.get('omni_url', ''))}: connect: connection refused\"")
    if mode == "x509":
        if inv.flags.get("--insecure-skip-tls-verify", "false") != "false":
            return None
        return ("rpc error: code = Unavailable desc = connection error: desc = \"transport: authentication "
                "handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority\"")
    if mode == "too_old":
        return ("omnictl is too old for this Omni instance, please update omnictl: "
                f"client version {CLIENT_VERSION}, client API version 1, server API version 2")
    if mode == "too_new":
        return ("omnictl is newer than this Omni instance, please use an omnictl matching the Omni version: "
                f"client version {CLIENT_VERSION}, client API version 2, server API version 1")
    if mode == "no_context":
        return None  # handled before connecting, see main()
    raise UsageError(f"lab omnictl: unknown error mode {mode!r} in the state file")


def _dial_address(url: str) -> str:
    m = re.match(r"^(?:(https?)://)?(\[[^\]]+\]|[^/:]+)(?::(\d+))?", url or "")
    if not m:
        return "127.0.0.1:443"
    scheme, host, port = m.groups()
    return f"{host}:{port or ('80' if scheme == 'http' else '443')}"


# -------------------------------------------------------------------------------------- commands


def check_get(inv: Invocation) -> None:
    """What cobra rejects before the command runs (and before omnictl connects): flags, arguments."""
    if inv.unknown:
        raise UsageError(_unknown_flag(inv.unknown[0]))
    received = len(inv.words) - 1
    if not 1 <= received <= 2:
        raise UsageError(f"accepts between 1 and 2 arg(s), received {received}")


def cmd_get(inv: Invocation, resources: list[Resource], registry: Registry, out: list[str]) -> None:
    """``omnictl get <type> [<id>]``, in get.go's order: type, selector, ID regexp, output format."""
    args = inv.words[1:]
    rtype = registry.resolve(args[0])
    rid = args[1] if len(args) > 1 else ""
    namespace = inv.flags.get("--namespace", rtype.namespace)
    terms = None
    if inv.flags.get("--selector"):
        if rid:
            raise UsageError("cannot specify both resource ID and selector")
        terms = parse_selector(inv.flags["--selector"])
    id_re = None
    if inv.flags.get("--id-match-regexp"):
        if rid:
            raise UsageError("cannot specify both resource ID and ID regexp")
        try:
            id_re = re.compile(inv.flags["--id-match-regexp"])
        except re.error as exc:
            raise UsageError(f"invalid ID regexp: error parsing regexp: {exc}") from None
    fmt = inv.flags.get("--output", "table")
    if fmt not in ("table", "yaml", "json"):
        if fmt.startswith("jsonpath="):
            raise UsageError("lab omnictl: -o jsonpath is not simulated; use -o json")
        raise UsageError(f"output format {json.dumps(fmt)} is not supported")
    if inv.flags.get("--watch", "false") != "false":
        raise UsageError("lab omnictl: --watch is not simulated")

    rows = [table_header(rtype)] if fmt == "table" else []
    found = sorted((r for r in resources if r.rtype is rtype and r.namespace == namespace), key=lambda r: r.id)
    try:
        if rid:
            found = [r for r in found if r.id == rid]
            if not found:
                raise UsageError(f"rpc error: code = NotFound desc = resource {rtype.type}({namespace}/{rid}"
                                 "@undefined) doesn't exist")
        if terms is not None:
            found = [r for r in found if matches(r.labels, terms)]
        if id_re is not None:
            found = [r for r in found if id_re.search(r.id)]
        for i, resource in enumerate(found):
            if fmt == "table":
                rows.append(table_row(resource))
            elif fmt == "yaml":
                out.append(("---\n" if i else "") + to_yaml(resource))
            else:
                out.append(to_json(resource))
    finally:
        if rows:  # the table writer is flushed even when the command fails
            out.append(tabulate(rows))


def cmd_infraprovider_list(resources: list[Resource], out: list[str]) -> None:
    """``omnictl infraprovider list``: one row per provider Omni has a combined status for."""
    rows = [["ID", "NAME", "VERSION", "DESCRIPTION", "CONNECTED", "ERROR"]]
    for r in sorted(resources, key=lambda r: r.id):
        if r.rtype.type == f"InfraProviderCombinedStatuses.{GROUP}":
            rows.append([r.id] + [_cell(r.spec, p) for p in ("name", "version", "description", "health.connected",
                                                                "health.error")])
    out.append(tabulate(rows))


def _unknown_flag(arg: str) -> str:
    name = arg.partition("=")[0]
    if name.startswith("--"):
        return f"unknown flag: {name}"
    return f"unknown shorthand flag: '{name[1:2]}' in {arg}"


HELP = """omnictl is a command line client for Omni (the lab twin's stand-in).

Usage:
  omnictl [command]

Available Commands:
  get           Get a specific resource or list of resources.
  infraprovider Manage infra providers.
  version       Print the client version.

Flags:
      --context string             The context to be used (default: the omniconfig's current context).
  -h, --help                       help for omnictl
      --insecure-skip-tls-verify   Skip TLS verification for the Omni GRPC and HTTP API endpoints.
      --omniconfig string          The path to the omni configuration file.
  -v, --version                    version for omnictl

Use "omnictl [command] --help" for more information about a command.
"""


def run(args: list[str], state: dict) -> tuple[int, str, str]:
    """Run one omnictl command line against ``state``: (exit status, stdout, stderr)."""
    out: list[str] = []
    try:
        inv = Invocation(args)
        command = inv.command
        if not command and inv.flags.get("--version"):
            return 0, f"omnictl version {CLIENT_VERSION}\n", ""
        if command[:1] == ["version"]:
            return 0, f"omnictl version {CLIENT_VERSION}\n", ""
        if not command or command[:1] == ["help"] or inv.flags.get("--help"):
            return 0, HELP, ""
        if command[0] not in _KNOWN:
            return 1, "", f'Error: unknown command "{command[0]}" for "omnictl"\nRun \'omnictl --help\' for usage.\n'
        if command[0] == "get":
            check_get(inv)
        if state.get("error") == "no_context":
            context = inv.flags.get("--context") or "default"
            raise UsageError(f'context "{context}" has not been configured, you will need to set it manually')
        if state.get("hang"):
            while True:  # Omni never answers; the caller's deadline has to end this
                time.sleep(3600)
        failure = connection_error(state, inv)
        if failure:
            raise UsageError(failure)
        registry = Registry()
        resources = load_resources(state, registry)
        if command[0] == "get":
            cmd_get(inv, resources, registry, out)
        elif command[:2] == ["infraprovider", "list"]:
            cmd_infraprovider_list(resources, out)
        else:
            raise UsageError(f"lab omnictl: `omnictl {' '.join(command[:2])}` is not simulated by the lab twin")
    except UsageError as exc:
        return 1, "".join(out), f"Error: {exc}\n"
    return 0, "".join(out), ""


# ------------------------------------------------------------------------------------------ main


def log_invocation(path: str, args: list[str]) -> None:
    """Append one request-log line (the twin's RequestLog format) in a single O_APPEND write."""
    entry = {"t": round(time.time(), 3), "kind": "omnictl", "target": "omnictl", "action": shlex.join(args),
             "write": is_write(args)}
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
    finally:
        os.close(fd)


def _own_options(argv: list[str]) -> tuple[str, str, list[str]]:
    """``--state`` and ``--log`` (the stand-in's own, given first); the rest is for omnictl."""
    own = {"--state": "", "--log": ""}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name not in own:
            break
        if not eq:
            if i + 1 >= len(argv):
                raise SystemExit(f"lab omnictl: {name} needs a value")
            value = argv[i + 1]
            i += 1
        own[name] = value
        i += 1
    if argv[i:i + 1] == ["--"]:
        i += 1
    if not own["--state"] or not own["--log"]:
        raise SystemExit("usage: python -m runbook_lib.lab.omnictl --state STATE.json --log REQUESTS.jsonl [args]")
    return own["--state"], own["--log"], argv[i:]


def main(argv: list[str] | None = None) -> int:
    state_path, log_path, args = _own_options(sys.argv[1:] if argv is None else argv)
    log_invocation(log_path, args)
    try:
        with open(state_path, encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"Error: lab omnictl: cannot read the state file {state_path}: {exc}\n")
        return 1
    status, stdout, stderr = run(args, state)
    sys.stdout.write(stdout)
    sys.stdout.flush()
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
