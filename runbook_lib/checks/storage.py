"""Storage selector (guide: "Storage Selector Issues"): one check per ``storage.*`` id.

Every selector is judged the way the provider runs it (:mod:`runbook_lib.model.storage_selectors`,
over :mod:`runbook_lib.cel`): compiled and type-checked as cel-go does, then evaluated for every
storage of every online node in the order ``GET /nodes/{node}/storage`` lists them, the first match
winning. A MachineClass that pins a ``node`` is only judged on that node. The notebook's tables of
the same are in :mod:`runbook_lib.views.storage`.

Evidence names (filled by :mod:`runbook_lib.gather.storage`):

``expected``        ``provider_id``, ``cluster``, ``candidate`` (a selector to try instead of the
                    classes' own, or None), ``machine_class`` (only this class, or None)
``machineclasses``  every MachineClass: ``id``, ``provider``, ``autoprovision``, ``keys``,
                    ``ignored`` (``[{key, meant}]``: keys the provider does not read), ``selectors``
                    (``[{path, present, text, not_string}]``), ``node`` (pinned), ``error``
``nodes``           ``[{node, status}]`` of the provider's cluster
``storages``        node -> ``[{storage, type, content, enabled, active, shared, total, used, avail}]``
                    in API order, for every online node that answered
``storage_errors``  online node -> why its storages could not be listed
"""

from __future__ import annotations

import re

from .. import cel
from ..evidence import Evidence
from ..model.storage import NO_VM_DISKS, STORAGE_TYPES, edit_distance, holds_disks
from ..model.storage_selectors import (
    Evaluated,
    analyze,
    grouped,
    pool_names,
    provider_classes,
    subjects,
    usable,
    usable_pools,
)
from . import Derived, Outcome, check, derive, ok, problem, skipped, unknown

MAX_ROWS = 6  # storages explained per node in a finding's evidence
POOL_FIELDS = {"enabled", "active", "shared", "content", "total", "used", "avail", "type", "storage", "disable"}

derive("storage")(analyze)  # every selector on every node, once per run


# ---------------------------------------------------------------------------------- helpers


def _no_subjects(ev: Evidence) -> Outcome:
    expected = ev.get("expected")
    which = f"MachineClass '{expected['machine_class']}'" if expected.get("machine_class") else "no MachineClass"
    if expected.get("machine_class"):
        return skipped(f"{which} of provider '{expected['provider_id']}' has a usable storage selector")
    return skipped(f"{which} of provider '{expected['provider_id']}' has a usable storage selector "
                   "(see storage.selector_missing)")


def _unanswered(judged: list[Evaluated]) -> list[str]:
    lines = []
    for e in judged:
        for node, why in e.not_judged.items():
            lines.append(f"{e.subject.label} on {node}: not judged: {why}")
    return sorted(set(lines))


def _finish(derived: Derived, found: list[str], fine: str, fine_lines: list[str], bad: str, fix: str = "") -> Outcome:
    """problem when anything was found; else unknown when a node could not be judged; else ok."""
    judged = derived(analyze)
    if found:
        return problem(bad, found + _unanswered(judged), fix)
    missing = _unanswered(judged)
    if missing and not any(e.picks for e in judged):
        return unknown("no node's storages could be read", missing)
    if missing:
        return unknown(f"{fine} on the nodes that answered; others could not be read", missing + fine_lines)
    return ok(fine, fine_lines)


def _why_lines(e: Evaluated, node: str, limit: int = MAX_ROWS) -> list[str]:
    rows = e.rows.get(node, [])
    lines = [f"  {r.get('storage')}: {cel.explain(e.selector, node, r)}" for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more storage(s) on {node}")
    return lines


def _row(e: Evaluated, node: str, storage: str) -> dict:
    return next((r for r in e.rows.get(node, []) if r.get("storage") == storage), {})


def _state(row: dict) -> str:
    return f"enabled={row.get('enabled')}, active={row.get('active')}, content={row.get('content') or '-'}"


def _suggest(ev: Evidence, e: Evaluated) -> str:
    pools = usable_pools(ev, list(e.picks) or list(e.rows))
    return f'storage_selector: name == "{pools[0]}"' if pools else 'storage_selector: name == "<pool>"'


def _error_lines(text: str) -> list[str]:
    return text.split("\n")


# ------------------------------------------------------------------------------------ checks


@check("storage.selector_missing",
       fix="Write the provider data with the provider's snake_case keys (`storage_selector: name == \"<pool>\"`, "
           "`disk_size: ...`) and apply the MachineClass again; the provider ignores camelCase keys silently.")
def selector_missing(ev: Evidence):
    expected = ev.get("expected")
    if expected.get("candidate") is not None:
        return skipped("a candidate selector was given; the classes' own selectors are not judged")
    classes = provider_classes(ev)
    others = [c["id"] for c in ev.get("machineclasses") if c.get("provider") != expected["provider_id"]]
    if not classes:
        lines = [f"omnictl get machineclasses: {', '.join(others) or 'none'} (none auto-provisions with "
                 f"provider '{expected['provider_id']}')"]
        return skipped(f"no MachineClass auto-provisions with provider '{expected['provider_id']}'", lines)
    found, fine = [], []
    for c in classes:
        label = f"machineclass {c['id']}"
        if c["error"]:
            found.append(f"{label}: {c['error']}; the provider cannot read its storage_selector")
            continue
        ignored = [i for i in c["ignored"] if i.get("meant")]
        for entry in c["selectors"]:
            if usable(entry):
                fine.append(f"{label}: {entry['path']}: {entry['text']}")
                continue
            if not entry["present"]:
                where = entry["path"].rsplit(".", 1)[0] if "[" in entry["path"] else "providerdata"
                found.append(f"{label}: {where} has no storage_selector (keys: {', '.join(c['keys']) or 'none'})")
            elif entry["not_string"]:
                found.append(f"{label}: {entry['path']} is not a string")
            else:
                found.append(f"{label}: {entry['path']} is empty")
            found += [f"  `{i['key']}` is ignored: the provider reads `{i['meant']}`" for i in ignored]
            if not entry["not_string"]:
                error = cel.compile_selector(entry["text"]).error
                found.append(f"  the provider fails every machine request of the class with: {error}")
    if found:
        return problem("a MachineClass has no storage selector the provider can use", found)
    return ok(f"{len(classes)} MachineClass(es) of provider '{expected['provider_id']}' carry a storage_selector", fine)


_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")


def _uses_type(sel: cel.Selector) -> bool:
    return "type" in sel.identifiers()


def _only_type_errors(sel: cel.Selector) -> bool:
    return sel.stage == "check" and _uses_type(sel) and all("type(type)" in i.message for i in sel.issues)


@check("storage.selector_invalid",
       fix="Make the selector compile as CEL over the provider's four variables (name, node, storageType, "
           "availableSpace): quote pool names, give numbers compared with availableSpace a `u` suffix, and try it "
           "with `runbook run storage -p selector '<expr>'` before applying the MachineClass.")
def selector_invalid(ev: Evidence, derived: Derived):
    subs = subjects(ev)
    if not subs:
        return _no_subjects(ev)
    pools = pool_names(ev)
    found, fine, type_only = [], [], []
    for s in subs:
        sel = cel.compile_selector(s.text)
        if sel.ok:
            fine.append(f"{s.label}: {s.text}: compiles (bool)")
            continue
        if _only_type_errors(sel):
            type_only.append(f"{s.label}: {s.text}")
            continue
        found.append(f"{s.label}: {s.text}")
        found += ["  " + line for line in _error_lines(sel.error)]
        found += ["  " + hint for hint in _hints(sel, pools)]
    for e in derived(analyze) if ev.has("storages") else []:
        for node, p in e.picks.items():
            failing = [r for r in p.rows if r.error]
            if e.selector.ok and failing:
                found.append(f"{e.subject.label} on {node}: evaluation fails for {failing[0].storage}: "
                             f"{failing[0].error}")
    if found:
        return problem("a storage selector does not compile as the provider's CEL", found)
    if type_only:
        return skipped("the only compile errors come from `type` (see storage.selector_type_keyword)",
                       type_only + fine)
    return ok("every storage selector compiles to a bool", fine)


def _hints(sel: cel.Selector, pools: set[str]) -> list[str]:
    hints = []
    for name in sorted({m.group(1) for i in sel.issues for m in _UNDECLARED.finditer(i.message)}):
        if name in pools:
            hints.append(f'`{name}` is a pool name, not a variable: quote it, name == "{name}"')
        elif name in POOL_FIELDS:
            hints.append(f"`{name}` is not a variable of the provider; only name, node, storageType and "
                         "availableSpace exist")
    if any("'(uint, int)'" in i.message or "'(int, uint)'" in i.message for i in sel.issues):
        hints.append("availableSpace is a uint: write the number with a u suffix (availableSpace > 100000000000u)")
    if sel.stage == "output":
        hints.append('a selector is a condition, e.g. name == "local-lvm", not a bare value')
    if sel.stage == "syntax" and sel.text.count('"') % 2:
        hints.append("a string literal is not closed")
    return hints


@check("storage.selector_type_keyword",
       fix='Compare the pool name instead: storage_selector: name == "<pool>" (the type is `storageType`, never `type`).')
def selector_type_keyword(ev: Evidence):
    subs = subjects(ev)
    if not subs:
        return _no_subjects(ev)
    found, fixes = [], []
    for s in subs:
        sel = cel.compile_selector(s.text)
        if not _uses_type(sel):
            continue
        found.append(f"{s.label}: {s.text}")
        found += ["  " + line for line in _error_lines(sel.error or "(compiles, but `type` is never the pool type)")]
        found.append("  `type` is CEL's built-in type identifier (a value of type type(type)), not a field of the "
                     "storage; the provider exposes the pool type as `storageType`")
        rewritten = _retype(sel)
        fixed = cel.compile_selector(rewritten)
        if fixed.ok and ev.has("storages"):
            storages = ev.get("storages")
            nodes = [s.node] if s.node else list(storages)
            winners = {n: cel.pick(fixed, n, storages[n]).winner for n in nodes if n in storages}
            shown = ", ".join(f"{n} -> {w or 'nothing'}" for n, w in winners.items())
            found.append(f"  with storageType it would read `{rewritten}` and pick: {shown}")
            picked = {w for w in winners.values() if w}
            if len(picked) == 1:
                fixes.append(f'{s.label}: storage_selector: name == "{picked.pop()}"')
    if not found:
        return ok("no selector uses `type`")
    fix = ("Compare the pool name instead: " + "; ".join(fixes) +
           " (the pool type is `storageType`, never `type`).") if fixes else ""
    return problem("a storage selector uses `type`, which CEL reserves for types", found, fix)


def _retype(sel: cel.Selector) -> str:
    """The selector with every `type` identifier spelled `storageType`."""
    offsets = sorted((n.offset for n in sel.nodes() if n.kind == "ident" and n.name == "type"), reverse=True)
    text = sel.text
    for off in offsets:
        text = text[:off] + "storageType" + text[off + len("type"):]
    return text


@check("storage.selector_empty",
       fix="Name a pool that exists on every node a VM may land on and can hold VM disks, "
           "e.g. storage_selector: name == \"<pool>\".")
def selector_empty(ev: Evidence, derived: Derived):
    if not subjects(ev):
        return _no_subjects(ev)
    found, fine, fixes = [], [], []
    for e in derived(analyze):
        if not e.selector.ok:
            fine.append(f"{e.subject.label}: not evaluated (it does not compile)")
            continue
        for nodes, p in grouped(e):
            if p.winner is None and not any(r.error for r in p.rows):
                found.append(f"{e.subject.label} on {nodes}: no pool matches `{e.subject.text}`; "
                             f"the provider fails with: {p.error}")
                found += _why_lines(e, p.node)
                fixes.append(f"{e.subject.label}: {_suggest(ev, e)}")
            elif p.winner:
                fine.append(f"{e.subject.label} on {nodes}: takes {p.winner}")
    fix = ("Select a pool that exists on every node a VM may land on and can hold VM disks: "
           + "; ".join(dict.fromkeys(fixes)) + ".") if fixes else ""
    return _finish(derived, found, "every selector matches a pool on every node", fine,
                   "a storage selector matches no pool", fix)


@check("storage.selector_multiple",
       fix="Pin one pool with an exact name: storage_selector: name == \"<pool>\".")
def selector_multiple(ev: Evidence, derived: Derived):
    if not subjects(ev):
        return _no_subjects(ev)
    found, fine, fixes = [], [], []
    for e in derived(analyze):
        for nodes, p in grouped(e):
            if len(p.matched) > 1:
                found.append(f"{e.subject.label} on {nodes}: `{e.subject.text}` matches {', '.join(p.matched)}; "
                             f"the provider takes {p.winner} (first in API order) and never considers "
                             f"{', '.join(p.shadowed)}")
                fixes.append(f'{e.subject.label}: storage_selector: name == "{p.winner}" (or name the one you '
                             f"meant: {', '.join(p.shadowed)})")
            elif p.winner:
                fine.append(f"{e.subject.label} on {nodes}: only {p.winner} matches")
    fix = ("Pin one pool with an exact name; " + "; ".join(dict.fromkeys(fixes)) + ".") if fixes else ""
    return _finish(derived, found, "no selector matches more than one pool", fine,
                   "a storage selector matches several pools; the provider silently takes the first", fix)


def _near(value: str, pools: set[str]) -> list[tuple[str, str]]:
    """Pools a literal was probably meant to name: same letters in another case, or a couple of edits away."""
    out = []
    for pool in sorted(pools):
        if pool.lower() == value.lower():
            out.append((pool, "differs only in case"))
        else:
            d = edit_distance(value.lower(), pool.lower())
            if d <= (1 if len(pool) <= 4 else 2):
                out.append((pool, f"{d} edit(s) away"))
    return out


@check("storage.name_typo",
       fix='Use the exact pool name (CEL compares strings case-sensitively): storage_selector: name == "<pool>".')
def name_typo(ev: Evidence):
    subs = subjects(ev)
    if not subs:
        return _no_subjects(ev)
    ev.get("storages")  # the pools are the evidence: without them this cannot be judged
    pools = pool_names(ev)
    found, fixes = [], []
    for s in subs:
        sel = cel.compile_selector(s.text)
        for lit in sel.literals():
            if lit.role not in ("name", "") or lit.value in pools:
                continue
            if lit.role == "" and lit.value in STORAGE_TYPES:
                continue
            if lit.op in ("startsWith", "endsWith", "contains"):
                test = {"startsWith": str.startswith, "endsWith": str.endswith, "contains": str.__contains__}[lit.op]
                if any(test(p, lit.value) for p in pools):
                    continue
                near = [(p, "matches only when case is ignored") for p in sorted(pools)
                        if test(p.lower(), lit.value.lower())]
            elif lit.op == "matches":
                continue
            else:
                near = _near(lit.value, pools)
            if near:
                found.append(f'{s.label}: "{lit.value}" names no pool; '
                             + ", ".join(f"{p} exists ({why})" for p, why in near))
                fixes.append(f'{s.label}: storage_selector: name == "{near[0][0]}"')
    if found:
        return problem("a storage selector misspells a pool name", found + [f"pools: {', '.join(sorted(pools))}"],
                       "Use the exact pool name (CEL compares strings case-sensitively): "
                       + "; ".join(dict.fromkeys(fixes)) + ".")
    return ok("no selector spells a pool name that is close to, but not, an existing one",
              [f"pools: {', '.join(sorted(pools))}"])


@check("storage.pool_inactive",
       fix="Enable the pool for that node (Datacenter > Storage > <pool>: Enable, and its Nodes list) and make it "
           "active (`pvesm status` on the node says why not), or pin the class to nodes where it is active (`node:`).")
def pool_inactive(ev: Evidence, derived: Derived):
    if not subjects(ev):
        return _no_subjects(ev)
    found, fine = [], []
    for e in derived(analyze):
        named = {lit.value for lit in e.selector.literals() if lit.role == "name" and lit.op in ("_==_", "@in")}
        for node, p in e.picks.items():
            if p.winner:
                row = _row(e, node, p.winner)
                if not row.get("enabled") or not row.get("active"):
                    state = "disabled" if not row.get("enabled") else "inactive"
                    found.append(f"{e.subject.label} on {node}: the provider takes {p.winner}, which is {state} "
                                 f"there ({_state(row)}); creating the VM's disk fails")
                else:
                    fine.append(f"{e.subject.label} on {node}: {p.winner} is enabled and active")
            elif e.selector.ok:
                for pool in sorted(named):
                    row = _row(e, node, pool)
                    if row and (not row.get("enabled") or not row.get("active")):
                        state = "disabled" if not row.get("enabled") else "inactive"
                        found.append(f"{e.subject.label} on {node}: the selector names {pool}, which is {state} "
                                     f"there ({_state(row)}, availableSpace=0), so nothing matches")
    return _finish(derived, found, "every pool the selectors pick is enabled and active", fine,
                   "a selected pool is disabled or inactive on a node that may host the VM")


@check("storage.wrong_type",
       fix="Select a pool whose type and content can hold VM disks (content includes `images`; "
           "lvmthin, lvm, zfspool, rbd, dir/nfs with images), e.g. storage_selector: name == \"<pool>\".")
def wrong_type(ev: Evidence, derived: Derived):
    if not subjects(ev):
        return _no_subjects(ev)
    found, fine, fixes, cannot_hold = [], [], [], False
    for e in derived(analyze):
        wanted = {lit.value for lit in e.selector.literals() if lit.role == "storageType" and lit.op in ("_==_", "@in")}
        for nodes, p in grouped(e):
            rows = e.rows.get(p.node, [])
            if p.winner:
                row = _row(e, p.node, p.winner)
                if not holds_disks(row):
                    cannot_hold = True
                    why = (f"a {row.get('type')} pool is {NO_VM_DISKS[row.get('type')]}" if row.get("type") in NO_VM_DISKS
                           else f"its content ({row.get('content') or 'none'}) does not include images")
                    found.append(f"{e.subject.label} on {nodes}: the provider takes {p.winner} "
                                 f"(type {row.get('type')}), which cannot hold VM disks: {why}")
                    fixes.append(f"{e.subject.label}: {_suggest(ev, e)}")
                else:
                    fine.append(f"{e.subject.label} on {nodes}: {p.winner} is {row.get('type')} with images")
            elif e.selector.ok and wanted:
                types = sorted({r.get("type") for r in rows})
                for t in sorted(wanted - set(types)):
                    close = [x for x in types if x.startswith(t) or t.startswith(x)]
                    hint = f"; did you mean {close[0]}?" if close else ""
                    found.append(f'{e.subject.label} on {nodes}: the selector asks for storageType "{t}", but the '
                                 f"pools there are {', '.join(_by_type(rows))}{hint}")
                    alternative = f'storage_selector: storageType == "{close[0]}" or ' if close else ""
                    fixes.append(f"{e.subject.label}: {alternative}{_suggest(ev, e)}")
    fix = ("Select a pool whose type and content can hold VM disks: " + "; ".join(dict.fromkeys(fixes)) + ".") \
        if fixes else ""
    bad = ("a selected pool's type or content cannot hold VM disks" if cannot_hold
           else "a selector asks for a storage type no pool there has")
    return _finish(derived, found, "every pool the selectors pick can hold VM disks", fine, bad, fix)


def _by_type(rows: list[dict]) -> list[str]:
    return [f"{r.get('storage')} ({r.get('type')})" for r in rows]
