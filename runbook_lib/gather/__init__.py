"""Gathering: which sources each runbook asks, in what order, into an :class:`Evidence`.

One module per guide section. Gathering never judges; the checks do. Independent sources are
asked in parallel, and every failure is kept as the reason a piece of evidence is missing.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, TypeVar

from ..calls import CallLog
from ..evidence import Evidence
from ..site import Site

T = TypeVar("T")


def in_parallel(ev: Evidence, groups: dict[str, Callable[[Evidence], None]], progress=None) -> Evidence:
    """Run independent gathering groups concurrently; each fills ``ev`` itself.

    A group that raises something unexpected is recorded as evidence ``<group>`` with the reason,
    so the checks that need it become ``unknown`` instead of the run failing.
    """
    with ThreadPoolExecutor(max_workers=max(1, len(groups)), thread_name_prefix="gather") as pool:
        futures = {name: pool.submit(fn, ev) for name, fn in groups.items()}
        for name, fut in futures.items():
            try:
                fut.result()
            except Exception as exc:  # a bug or an unmapped library error: keep it as a reason
                ev.fail(name, f"{type(exc).__name__}: {exc}")
            if progress is not None:
                progress(name)
    return ev


def provider_evidence(site: Site, **expected: Any) -> Evidence:
    """The evidence of a section about the site's provider, begun with what the site expects of it
    (``expected``: its provider id and Proxmox cluster, and the section's own limits or choices)."""
    ev = Evidence()
    ev.put("expected", {"provider_id": site.provider.id, "cluster": site.provider.cluster, **expected})
    return ev


def log_window(tail: int | None, since: str | None) -> str:
    """How much of a container's log was read, in the words every section's evidence uses."""
    return f"tail {tail or 'all'}" + (f", since {since}" if since else "")


def section(name: str, site: Site, calls: CallLog, progress: Callable[[str], None] | None = None) -> Evidence:
    """Gather one section's evidence with its default options (the notebooks pass their parameters
    to the section module's own ``gather``; this is the same call with none)."""
    module = importlib.import_module(f"{__name__}.{name}")
    if name == "argocd":  # ArgoCD's gathering first picks the site's Kubernetes cluster
        return module.gather_site(site, calls, progress=progress)[1]
    return module.gather(site, calls, progress=progress)


def options(cls: type[T], parameters: Mapping[str, Any]) -> T:
    """A section's ``Options`` (a dataclass) filled from the notebook parameters of the same names.

    A field no parameter names keeps its default. A field typed ``X | None`` reads an empty
    parameter (``""`` or ``0``) as ``None``: no limit. Other ``int``, ``float`` and ``str`` fields
    are converted to their type. The names in the class's ``LIMITS`` (the checks' limits a notebook
    may change) go into its ``limits`` dict.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {f.name: _as(hints[f.name], f.name, parameters[f.name])
                              for f in dataclasses.fields(cls) if f.name in parameters}
    limits = {name: parameters[name] for name in getattr(cls, "LIMITS", ()) if name in parameters}
    if limits:
        values["limits"] = limits
    return cls(**values)


def _as(hint: Any, name: str, value: Any) -> Any:
    kinds = typing.get_args(hint) or (hint,)
    if type(None) in kinds:
        if not value:
            return None
        kinds = tuple(k for k in kinds if k is not type(None))
    kind = kinds[0] if len(kinds) == 1 else None
    if kind is bool and not isinstance(value, bool):
        raise TypeError(f"option {name} must be true or false, got {value!r}")
    if kind in (int, float, str):
        return kind(value)
    return value
