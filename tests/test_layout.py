"""The import rules of docs/architecture.md: sources -> gather -> checks, and model read by both.

checks import the model and the evidence, never gather or sources (a check judges evidence and
talks to nothing), nor fixes or views (a check judges: it builds no plan and no table); gather
imports sources and the model, never checks; the model imports neither, so what a fact means is
decided in one place. fixes (the plans) and views (the notebooks' tables) read the model and the
evidence, never gather or sources. cel and netpol are self-contained evaluators: they import nothing
of the project. The lab twin (``lab/runbook_lab``) is a distribution of its own: the product never
imports it (the CLI's ``lab`` verbs load it by name).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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
