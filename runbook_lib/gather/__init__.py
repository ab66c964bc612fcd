"""Gathering: which sources each runbook asks, in what order, into an :class:`Evidence`.

One module per guide section. Gathering never judges; the checks do. Independent sources are
asked in parallel, and every failure is kept as the reason a piece of evidence is missing.
"""

from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..calls import CallLog
from ..evidence import Evidence
from ..site import Site


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
