"""Which problem explains which: root causes first, knock-ons under them.

The cause catalog says, per finding id, which ids it can explain (``explains``). Here those links
are followed through (a key the provider cannot use stops its container, which leaves it
unregistered): in one run, a problem that another problem of the run can explain is a knock-on;
a problem that nothing of the run explains is a root cause. Root causes are ordered so the one to
fix first comes first: the one that explains the most problems of the run; on a tie, the lower
layer (Proxmox and the provider host before Omni, Omni before Kubernetes), then catalog order.
A security event (``security.*``: possible interception) always comes first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from . import catalog

SECURITY = "security."  # a security event (an SSH host key that does not match) is looked at before any fix


@functools.lru_cache(maxsize=1)
def _reach() -> dict[str, frozenset[str]]:
    """Per id, every id it can explain, directly or through others (the catalog has no loops)."""
    cat = catalog.load()
    memo: dict[str, frozenset[str]] = {}

    def walk(fid: str) -> frozenset[str]:
        if fid not in memo:
            direct = cat[fid].explains
            memo[fid] = frozenset(direct).union(*(walk(d) for d in direct)) if direct else frozenset()
        return memo[fid]

    return {fid: walk(fid) for fid in cat.causes}


def can_explain(cause: str, effect: str) -> bool:
    return effect in _reach().get(cause, frozenset())


@dataclass(frozen=True)
class Attribution:
    root_causes: list[str]  # the one to fix first first
    explained_by: dict[str, list[str]]  # problem id -> the problems of the run that explain it ([] for a root)

    def knock_ons(self, root: str) -> list[str]:
        """The problems ``root`` explains, grouped under the first root cause that explains them."""
        return [p for p, by in self.explained_by.items() if by and self.first_root(p) == root]

    def first_root(self, problem: str) -> str | None:
        return next((r for r in self.root_causes if r in self.explained_by.get(problem, [])), None)


def attribute(problem_ids: list[str]) -> Attribution:
    """Root causes and knock-ons among one run's problems (ids the catalog does not know are roots)."""
    cat, reach = catalog.load(), _reach()
    problems = list(dict.fromkeys(problem_ids))
    score = {p: sum(1 for q in problems if q in reach.get(p, ())) for p in problems}
    order = {fid: i for i, fid in enumerate(cat.causes)}
    layers = {layer: i for i, layer in enumerate(cat.layers)}

    def rank(fid: str) -> tuple:
        layer = cat[fid].layer if fid in cat else cat.layers[-1]
        return not fid.startswith(SECURITY), -score[fid], layers[layer], order.get(fid, len(order)), fid

    explained_by = {p: sorted((q for q in problems if q != p and p in reach.get(q, ())), key=rank) for p in problems}
    roots = sorted((p for p in problems if not explained_by[p]), key=rank)
    return Attribution(roots, {p: explained_by[p] for p in sorted(problems, key=rank)})
