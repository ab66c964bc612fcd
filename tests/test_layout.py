"""The import rules of docs/architecture.md: sources -> gather -> checks, and model read by both.

checks import the model and the evidence, never gather or sources (a check judges evidence and
talks to nothing), nor fixes or views (a check judges: it builds no plan and no table); gather
imports sources and the model, never checks; the model imports neither, so what a fact means is
decided in one place. fixes (the plans) and views (the notebooks' tables) read the model and the
evidence, never gather or sources. cel and netpol are self-contained evaluators: they import nothing
of the project. Only sources do I/O: gather, the model and the checks import no network, process or
remote-access module. Every layer shares one outcome vocabulary (``runbook_lib.outcome``, a leaf
module) and compares outcomes as its members. The lab twin (``lab/runbook_lab``) is a distribution
of its own: the product never imports it (the CLI's ``lab`` verbs load it by name).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runbook_lib.outcome import Outcome

PACKAGE = Path(__file__).resolve().parent.parent / "runbook_lib"
FORBIDDEN = {
    "checks": ("gather", "sources", "fixes", "views"),
    "gather": ("checks", "views"),
    "model": ("checks", "gather", "sources", "fixes", "views"),
    "sources": ("checks", "gather", "model"),
    "fixes": ("checks", "gather", "sources", "views"),
    "views": ("gather", "sources", "fixes"),
}
SELF_CONTAINED = ("cel", "netpol")  # import nothing of the project but themselves
# what talks to other systems or runs programs: for sources/ alone
IO_MODULES = ("socket", "ssl", "subprocess", "requests", "paramiko", "urllib.request", "http.client", "urllib3",
              "proxmoxer", "kubernetes")
NO_IO = ("checks", "gather", "model")


def imported(path: Path) -> set[str]:
    """The runbook_lib subpackages a module imports (relative or absolute)."""
    return imports_of(path.read_text(encoding="utf-8"), path.relative_to(PACKAGE).parts[:-1])


def imports_of(text: str, package: tuple[str, ...]) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts + [alias.name] for alias in node.names] if not node.module else [parts]
            else:
                names = [node.module.split(".")[1:]] if (node.module or "").startswith("runbook_lib") else []
            out |= {n[0] for n in names if n}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("runbook_lib.")}
    return out


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_follow_the_flow(layer):
    bad = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        wrong = imported(path) & set(FORBIDDEN[layer])
        if wrong:
            bad[str(path.relative_to(PACKAGE))] = sorted(wrong)
    assert bad == {}


@pytest.mark.parametrize("package", SELF_CONTAINED)
def test_self_contained_packages_import_nothing_of_the_project(package):
    paths = sorted((PACKAGE / package).rglob("*.py"))
    assert paths
    assert {str(p.relative_to(PACKAGE)): sorted(imported(p) - {package}) for p in paths
            if imported(p) - {package}} == {}


def test_every_layer_exists():
    assert [layer for layer in (*FORBIDDEN, *SELF_CONTAINED) if not (PACKAGE / layer).is_dir()] == []


def test_the_rule_catches_a_wrong_import():
    assert imports_of("from ..gather.provider import find_container\n", ("checks",)) == {"gather"}
    assert imports_of("from ..model.join import join_chain\n", ("checks",)) == {"model"}
    assert imports_of("from .. import cel\n", ("checks",)) == {"cel"}
    assert imports_of("from . import check\n", ("checks",)) == {"checks"}
    assert imports_of("import runbook_lib.sources.ssh\n", ("model",)) == {"sources"}
    assert imports_of("from ..fixes import Plan\n", ("checks",)) == {"fixes"}
    assert imports_of("from .labels import selects\n", ("netpol",)) == {"netpol"}
    assert imports_of("from ..evidence import Evidence\n", ("views",)) == {"evidence"}


def modules_imported(text: str) -> set[str]:
    """Every module an import statement names, with the submodules ``from X import y`` may mean (X.y)."""
    out = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def io_imports(text: str) -> set[str]:
    return {m for m in modules_imported(text) for io in IO_MODULES if m == io or m.startswith(io + ".")}


@pytest.mark.parametrize("layer", NO_IO)
def test_only_sources_do_io(layer):
    bad = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        found = io_imports(path.read_text(encoding="utf-8"))
        if found:
            bad[str(path.relative_to(PACKAGE))] = sorted(found)
    assert bad == {}


def test_the_io_rule_catches_an_io_import():
    assert io_imports("import socket\n") == {"socket"}
    assert io_imports("from urllib import request\n") == {"urllib.request"}
    assert io_imports("import http.client as hc\nfrom http import HTTPStatus\n") == {"http.client"}
    assert io_imports("from concurrent.futures import ThreadPoolExecutor\nfrom urllib.parse import urlsplit\n") == set()


def test_the_outcome_vocabulary_is_a_leaf():
    """Every layer imports it (sources as much as the checks), so it imports nothing of the package."""
    assert imports_of((PACKAGE / "outcome.py").read_text(encoding="utf-8"), ()) == set()


OUTCOME_WORDS = {o.value for o in Outcome}


def outcome_literals(text: str) -> list[str]:
    """String literals of outcome words compared with a ``kind`` (``x["kind"]``, ``x.get("kind")``,
    ``x.kind``, ``error_kind``) or a variable named ``kind``: they should be :class:`Outcome` members."""
    def is_kind(node) -> bool:
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            return node.slice.value in ("kind", "error_kind")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value in (
                "kind", "error_kind")
        if isinstance(node, ast.Attribute):
            return node.attr in ("kind", "error_kind")
        return isinstance(node, ast.Name) and node.id == "kind"

    def words(node) -> list[str]:
        items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return [i.value for i in items if isinstance(i, ast.Constant) and i.value in OUTCOME_WORDS]

    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(is_kind(s) for s in sides):
                found += [w for s in sides for w in words(s)]
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_outcomes_are_compared_as_members(layer):
    bad = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        found = outcome_literals(path.read_text(encoding="utf-8"))
        if found:
            bad[str(path.relative_to(PACKAGE))] = found
    assert bad == {}


def test_the_outcome_rule_catches_a_string():
    assert outcome_literals('if p["kind"] in ("refused", "dns"): pass\n') == ["refused", "dns"]
    assert outcome_literals('ok = exc.kind == "host_key"\n') == ["host_key"]
    assert outcome_literals('ok = p.get("kind") != Outcome.OK or key["kind"] == "none"\n') == []


def test_the_product_never_imports_the_twin():
    importers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any(n == "runbook_lab" or n.startswith("runbook_lab.") for n in names):
                importers.append(str(path.relative_to(PACKAGE)))
    assert importers == []
    assert not (PACKAGE / "lab").exists()


def test_every_package_the_product_imports_is_declared():
    """What runbook_lib imports from outside the standard library is a dependency pyproject.toml
    names, not something that happens to arrive with another package."""
    import importlib.metadata
    import re
    import sys
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[\[<>=! ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in project["dependencies"]}
    top = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                top |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                top.add(node.module.split(".")[0])
    third = top - set(sys.stdlib_module_names) - {"runbook_lib"}
    dists = importlib.metadata.packages_distributions()
    missing = {m: dists.get(m) for m in third
               if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & declared}
    assert missing == {}
