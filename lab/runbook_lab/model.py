"""The twin's state: the healthy site, scenario patches, placeholders, and the request log.

A scenario is a YAML file with ``name``, ``summary``, ``expect`` (the finding ids that must come
out as ``problem``) and ``changes``, a patch over ``healthy.yaml``: mappings merge key by key, any
other value replaces, ``null`` deletes. See ``docs/scenarios.md``.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runbook_lib import catalog
from runbook_lib.errors import ScenarioError

HERE = Path(__file__).resolve().parent
HEALTHY = HERE / "healthy.yaml"
SCENARIOS = HERE / "scenarios"
_SCENARIO_KEYS = {"name", "summary", "cause", "expect", "changes", "notes"}


def merge(base: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``base`` (neither is modified): the scenario merge rule."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def list_scenarios() -> dict[str, Path]:
    """Shipped scenarios by name (the file stem)."""
    return {p.stem: p for p in sorted(SCENARIOS.glob("*.yaml"))}


def load_scenario(name_or_path: str | Path | None) -> dict:
    """A scenario by shipped name or file path; ``None`` or ``healthy`` is the healthy site."""
    if name_or_path in (None, "", "healthy"):
        path = SCENARIOS / "healthy.yaml"
    else:
        path = Path(name_or_path)
        if not path.suffix:
            shipped = list_scenarios()
            if str(name_or_path) not in shipped:
                raise ScenarioError(
                    f"unknown scenario '{name_or_path}'; shipped: {', '.join(shipped)} (or give a .yaml path)"
                )
            path = shipped[str(name_or_path)]
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"scenario {path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ScenarioError(f"scenario {path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return validate_scenario(doc, str(path))


def scenario_causes() -> dict[str, str | None]:
    """Each shipped scenario's ``cause`` by name, read without validating the whole scenario (a
    drill draws among them; the test suite validates every shipped scenario)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = {}
    for name, path in list_scenarios().items():
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        out[name] = doc.get("cause") if isinstance(doc, dict) else None
    return out


def validate_scenario(doc: Any, source: str = "scenario") -> dict:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{source}: expected a mapping with name, summary, expect, changes")
    unknown = set(doc) - _SCENARIO_KEYS
    if unknown:
        raise ScenarioError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SCENARIO_KEYS)}")
    for key in ("name", "summary"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise ScenarioError(f"{source}: '{key}' must be a non-empty string")
    expect = doc.get("expect", [])
    if not isinstance(expect, list) or not all(isinstance(e, str) and "." in e for e in expect):
        raise ScenarioError(f"{source}: 'expect' must be a list of finding ids like provider.key_invalid")
    unknown_ids = [e for e in expect if e not in catalog.load()]
    if unknown_ids:
        raise ScenarioError(f"{source}: 'expect' names id(s) the cause catalog does not have: {', '.join(unknown_ids)}")
    cause = doc.get("cause")
    if expect and cause not in expect:
        raise ScenarioError(f"{source}: 'cause' must name the one id of 'expect' that the others follow from "
                            f"(got {cause!r})")
    if not expect and cause is not None:
        raise ScenarioError(f"{source}: a scenario that expects no problem has no 'cause'")
    changes = doc.get("changes", {}) or {}
    if not isinstance(changes, dict):
        raise ScenarioError(f"{source}: 'changes' must be a mapping (a patch over healthy.yaml)")
    _check_paths(changes, healthy_state(), "changes", source)
    _check_latency(changes, source)
    return {"name": doc["name"], "summary": doc["summary"], "cause": cause, "expect": expect, "changes": changes,
            "notes": doc.get("notes", "")}


def _check_latency(changes: dict, source: str) -> None:
    """The latency knob holds seconds per kind (lab/latency.py)."""
    from .latency import latencies

    try:
        latencies({"latency": changes.get("latency")})  # kinds it leaves out stay at healthy.yaml's 0
    except ValueError as exc:
        raise ScenarioError(f"{source}: changes.{exc}") from None


# keys under which scenarios may add new entries (names of containers, resources, files ...)
_OPEN_MAPPINGS = {"containers", "resources", "files", "storages", "tokens", "clusters", "probes", "env", "nodes",
                  "context", "fields", "spec", "metadata", "labels", "compose", "acl",
                  "objects", "pod_logs", "status", "annotations", "selector", "matchLabels"}


def _check_paths(patch: dict, base: Any, path: str, source: str) -> None:
    """Reject keys the healthy model does not know (typos), except inside open mappings."""
    for key, value in patch.items():
        here = f"{path}.{key}"
        known = isinstance(base, dict) and key in base
        if not known and path.rsplit(".", 1)[-1] not in _OPEN_MAPPINGS and not _is_entry(path):
            raise ScenarioError(f"{source}: {here}: not a field of the lab site (see healthy.yaml)")
        if isinstance(value, dict) and known:
            _check_paths(value, base[key], here, source)


def _is_entry(path: str) -> bool:
    parts = path.split(".")
    return len(parts) >= 2 and parts[-2] in _OPEN_MAPPINGS


def healthy_state() -> dict:
    return yaml.safe_load(HEALTHY.read_text(encoding="utf-8"))


def scenario_state(scenario: dict) -> dict:
    return merge(healthy_state(), scenario.get("changes") or {})


_PLACEHOLDER = re.compile(r"\$\{([a-z_]+)(?::([A-Za-z0-9_.-]+))?\}")


def fill(obj: Any, values: dict[str, Any], *, strict: bool = False, named_secrets: bool = True) -> Any:
    """Replace ``${name}`` / ``${name:arg}`` placeholders. A whole-string placeholder keeps its type.

    A new ``${secret:NAME}`` becomes ``CANARY-NAME-<hex>``; with ``named_secrets=False`` (a drill's
    twin) ``CANARY-<hex>``, so that a value does not tell what the scenario made of it (a stale token).
    """
    if isinstance(obj, dict):
        return {k: fill(v, values, strict=strict, named_secrets=named_secrets) for k, v in obj.items()}
    if isinstance(obj, list):
        return [fill(v, values, strict=strict, named_secrets=named_secrets) for v in obj]
    if not isinstance(obj, str) or "${" not in obj:
        return obj

    def lookup(m: re.Match) -> Any:
        key = m.group(1) if m.group(2) is None else f"{m.group(1)}:{m.group(2)}"
        if key in values:
            return values[key]
        if m.group(1) == "ago" and "now" in values:
            return int(values["now"]) - int(m.group(2) or 0)
        if m.group(1) == "secret":
            label = f"{m.group(2)}-" if named_secrets else ""
            values[key] = f"CANARY-{label}{secrets.token_hex(8)}"
            return values[key]
        if strict:
            raise ScenarioError(f"unknown placeholder ${{{key}}}")
        return m.group(0)

    whole = _PLACEHOLDER.fullmatch(obj)
    if whole:
        return lookup(whole)
    return _PLACEHOLDER.sub(lambda m: str(lookup(m)), obj)


@dataclass
class TwinContext:
    """What the twin's servers need to know about each other."""

    now: float
    ca_file: Path
    targets: dict[str, str] = field(default_factory=dict)  # "127.0.0.1:PORT" -> "omni" | "proxmox"
    talos: dict[str, str] = field(default_factory=dict)  # address -> Talos role (talos_nodes.py), for nc


class RequestLog:
    """Every request and command the twin received, as JSON lines (the read-only tests read it)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.touch()

    def add(self, kind: str, target: str, action: str, write: bool = False, **extra: Any) -> None:
        entry = {"t": round(time.time(), 3), "kind": kind, "target": target, "action": action,
                 "write": bool(write), **extra}
        line = json.dumps(entry, default=str) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def entries(self) -> list[dict]:
        with open(self.path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def writes(self) -> list[dict]:
        return [e for e in self.entries() if e.get("write")]
