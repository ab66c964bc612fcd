"""The lab twin's stand-in for ``omnictl``: prints what the real one prints, for the twin's state.

Run as ``python -m runbook_lab.omnictl --state STATE.json --log REQUESTS.jsonl [omnictl args]``
(the twin's ``bin/omnictl`` script execs this). ``STATE.json`` is the ``omnictl`` mapping of the
scenario plus ``now`` and ``omni_url``::

    {"error": null | "unauthenticated" | "permission_denied" | "unavailable" | "x509" | "too_old"
              | "too_new" | "no_context",
     "hang": false, "resources": {"<Type>/<id>": {"metadata": {...}, "spec": {...}}},
     "now": 1795770000, "omni_url": "https://127.0.0.1:PORT", "latency": 0.0}

What is reproduced (research notes, omni.md section 4): ``get`` with its flags; the table, YAML
and JSON shapes (YAML with 4-space indentation and ``---`` between documents; JSON re-encoded from
the YAML with sorted keys, 4-space indentation and objects simply concatenated); metadata defaults;
the error lines on stderr with exit status 1; ``infraprovider list``. Every invocation appends one
line to the request log, ``write`` set for commands that would change Omni. Commands that change
Omni are recognised and logged but not simulated. The resource types and selectors are in
:mod:`.omni_resources`, the output shapes in :mod:`.omni_output`. A command that asks Omni first
waits ``latency`` seconds (the twin's ``latency.omnictl``: one call over a VPN).

This runs once per omnictl call, so it and the modules it uses import only the standard library's
lightest modules.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time

from .go_format import tabwriter
from .omni_output import cell, table_header, table_row, to_json, to_yaml
from .omni_resources import GROUP, Registry, Resource, UsageError, load_resources, matches, parse_selector

CLIENT_VERSION = "v1.3.0"

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
            out.append(tabwriter(rows))


def cmd_delete(inv: Invocation, state: dict, resources: list[Resource], registry: Registry, out: list[str]) -> None:
    """``omnictl delete <type> <id>...`` as delete.go runs it: tear each resource down (``torn down
    <Type> <id>``), then wait until it is destroyed (``destroyed <Type> <id>``), which happens once its
    finalizers are gone. The stand-in changes ``state`` (the caller writes it back).

    What Omni's controllers do next is modelled only for a Link, the resource a user deletes to let a
    machine go (omni issue 2948, siderolabs/docs issue 661): its Machine goes with it; its
    MachineStatus goes too while the infra provider is connected (the running provider releases its
    finalizers), and stays behind otherwise (the half-deleted machine docs issue 661 describes).
    A resource that keeps finalizers never gets destroyed: omnictl waits until its deadline, as the
    real one does. Selectors and ``--all`` are not simulated.
    """
    if inv.unknown:
        raise UsageError(_unknown_flag(inv.unknown[0]))
    args = inv.words[1:]
    if not args:
        raise UsageError("requires at least 1 arg(s), only received 0")
    if len(args) == 1:
        raise UsageError("either resource ID or one of --all or --selector flags must be specified")
    rtype = registry.resolve(args[0])
    namespace = inv.flags.get("--namespace", rtype.namespace)
    stored = state.setdefault("resources", {})
    for rid in args[1:]:
        key = next((k for k, r in zip(stored, resources) if r.rtype is rtype and r.id == rid
                    and r.namespace == namespace), None)
        if key is None:
            raise UsageError(f"rpc error: code = NotFound desc = resource {rtype.type}({namespace}/{rid}"
                             "@undefined) doesn't exist")
        raw = stored[key] = dict(stored[key] or {})
        raw["metadata"] = {**(raw.get("metadata") or {}), "phase": "tearingDown"}
        out.append(f"torn down {rtype.type} {rid}\n")
        if raw["metadata"].get("finalizers"):
            while True:  # destroyed only once its finalizers are released: the caller's deadline ends this
                time.sleep(3600)
        del stored[key]
        out.append(f"destroyed {rtype.type} {rid}\n")
        if rtype.type == "Links.omni.sidero.dev":
            _released(stored, rid)


def _released(stored: dict, machine_id: str) -> None:
    """A Link is gone: its Machine goes, and its MachineStatus while the provider is connected."""
    stored.pop(f"Machines.omni.sidero.dev/{machine_id}", None)
    connected = any(((raw or {}).get("spec") or {}).get("health", {}).get("connected")
                    for key, raw in stored.items() if key.startswith("InfraProviderCombinedStatuses."))
    if connected:
        stored.pop(f"MachineStatuses.omni.sidero.dev/{machine_id}", None)


def cmd_infraprovider_list(resources: list[Resource], out: list[str]) -> None:
    """``omnictl infraprovider list``: one row per provider Omni has a combined status for."""
    rows = [["ID", "NAME", "VERSION", "DESCRIPTION", "CONNECTED", "ERROR"]]
    for r in sorted(resources, key=lambda r: r.id):
        if r.rtype.type == f"InfraProviderCombinedStatuses.{GROUP}":
            rows.append([r.id] + [cell(r.spec, p) for p in ("name", "version", "description", "health.connected",
                                                               "health.error")])
    out.append(tabwriter(rows))


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
        wait_for_omni(state)
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
        elif command[0] == "delete":
            cmd_delete(inv, state, resources, registry, out)
        else:
            raise UsageError(f"lab omnictl: `omnictl {' '.join(command[:2])}` is not simulated by the lab twin")
    except UsageError as exc:
        return 1, "".join(out), f"Error: {exc}\n"
    return 0, "".join(out), ""


def wait_for_omni(state: dict) -> None:
    """The round trip to Omni every call that asks it pays (the twin's ``latency.omnictl``, seconds)."""
    seconds = float(state.get("latency") or 0)
    if seconds > 0:
        time.sleep(seconds)


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
        raise SystemExit("usage: python -m runbook_lab.omnictl --state STATE.json --log REQUESTS.jsonl [args]")
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
    before = json.dumps(state.get("resources"), sort_keys=True)
    status, stdout, stderr = run(args, state)
    if status == 0 and json.dumps(state.get("resources"), sort_keys=True) != before:
        tmp = f"{state_path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, state_path)
    sys.stdout.write(stdout)
    sys.stdout.flush()
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
