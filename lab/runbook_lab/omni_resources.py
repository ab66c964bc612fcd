"""What omnictl knows of Omni's resources: the types it can resolve, resources as Omni stores
them, and label selectors.

A type is found by any of omnictl's names for it: full (``MachineStatuses.omni.sidero.dev``),
plural, singular, partial suffixes and the capitals abbreviation (``ms``); each has a default
namespace and the extra columns of its table. A resource's metadata gets Omni's defaults
(version 1, phase running, timestamps from the twin's clock) and keeps its scalars untyped, as
Omni does. Selectors are Omni's label query syntax.

Like :mod:`.omnictl`, this module imports only the standard library's lightest modules.
"""

from __future__ import annotations

import re
import time

from .go_format import format_float

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
        return format_float(value)
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
    """True when ``labels`` satisfy every term of a parsed selector."""
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

