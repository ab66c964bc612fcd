"""Notebooks are committed clean and thin, with a parameters cell papermill can read.

Thin means: no logic in a notebook. Every code cell is a sequence of calls into runbook_lib (and
assignments of what they return); what decides, loops or lays evidence out lives in the library,
where it is unit-tested. :func:`logic_in` is the rule, cell by cell.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from runbook_lib import catalog, parameters

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

# what a cell may not hold, and how the rule names it
LOGIC = {
    ast.FunctionDef: "def", ast.AsyncFunctionDef: "def", ast.Lambda: "lambda", ast.ClassDef: "class",
    ast.For: "for loop", ast.AsyncFor: "for loop", ast.While: "while loop",
    ast.ListComp: "comprehension", ast.SetComp: "comprehension", ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.If: "if", ast.IfExp: "conditional expression", ast.BoolOp: "and/or",
    ast.Try: "try", ast.TryStar: "try", ast.Match: "match",
}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def is_parameters(cell: dict) -> bool:
    return "parameters" in cell.get("metadata", {}).get("tags", [])


def logic_in(cell_source: str) -> list[str]:
    """What in one code cell is logic rather than a call into the library, one line each: functions,
    classes, loops, comprehensions, branches, ``and``/``or``, ``try``; and anything private (an
    import of, or an attribute or name starting with, ``_``)."""
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(cell_source))  # magics become calls
    found = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if type(node) in LOGIC:
            found.append(f"{where}: {LOGIC[type(node)]}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [(node.module or "") if isinstance(node, ast.ImportFrom) else ""] + [a.name for a in node.names]
            private = [n for n in names for part in n.split(".") if part.startswith("_")]
            found += [f"{where}: private import {n}" for n in private]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            found.append(f"{where}: private attribute .{node.attr}")
        elif isinstance(node, ast.Name) and node.id.startswith("_"):
            found.append(f"{where}: private name {node.id}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"cells {dirty} of {path.name} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_and_runner_parameters(path):
    import papermill

    params = papermill.inspect_notebook(str(path))
    for name in ("site_file", "headless", "run_id", "verdict_path"):
        assert name in params, f"{path.name} lacks the parameter {name}"
    assert all(p["help"] for p in params.values()), "every parameter has a # comment"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_logic_in_a_notebook(path):
    found = {i: logic_in(source(c)) for i, c in enumerate(cells(path)) if c["cell_type"] == "code"}
    assert {i: f for i, f in found.items() if f} == {}, "logic belongs in runbook_lib (notebook.py, views, gather)"


def test_the_rule_catches_logic():
    assert logic_in("%matplotlib inline\nrun = nb.start('x', globals())\nnb.frame(views.pods(ev))\n") == []
    bad = {
        "for f in verdict.problems:\n    print(f.id)\n": "for loop",
        "while True:\n    break\n": "while loop",
        "nb.frame([{'id': f.id} for f in findings])\n": "comprehension",
        "rows = {k: v for k, v in ev.items()}\n": "comprehension",
        "print(', '.join(x for x in names))\n": "comprehension",
        "def rows(ev):\n    return []\n": "def",
        "recheck = lambda ids: run_checks('x', ev)\n": "lambda",
        "class View:\n    pass\n": "class",
        "if ev.has('pods'):\n    print('x')\n": "if",
        "nb.frame(rows if rows else [])\n": "conditional expression",
        "nb.frame(ev.optional('pods') or [])\n": "and/or",
        "try:\n    paths = component_paths(ev)\nexcept Exception:\n    paths = []\n": "try",
        "from runbook_lib.checks.argocd import _types\n": "private import _types",
        "from runbook_lib.gather._private import x\n": "private import runbook_lib.gather._private",
        "import runbook_lib._secret\n": "private import runbook_lib._secret",
        "argocd_checks._types(policy)\n": "private attribute ._types",
        "print(_)\n": "private name _",
    }
    for cell, what in bad.items():
        assert any(f.endswith(what) for f in logic_in(cell)), (cell, logic_in(cell))


def parameters_written_again(cell_source: str, declared: set[str]) -> list[str]:
    """Where a cell writes a declared parameter's name again, other than to read its value from the
    run (``run.params.NAME``, what the form edits), or to hand that on under its own name. A method
    of the same name (``run.apply_fix(...)``) is not a parameter."""
    tree = ast.parse(cell_source)

    def reads(node: ast.AST, name: str) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == name and isinstance(node.value, ast.Attribute)
                and node.value.attr == "params")

    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}  # run.apply_fix(...)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in declared:
            found.append(f"the variable {node.id}")
        elif isinstance(node, ast.keyword) and node.arg in declared and not reads(node.value, node.arg):
            found.append(f"{node.arg}=")
        elif (isinstance(node, ast.Attribute) and node.attr in declared and id(node) not in called
              and not reads(node, node.attr)):
            found.append(f".{node.attr}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_declared_once(path):
    """The parameters cell is the one place a parameter is written: the run takes them from there
    (``nb.start(..., globals())``) and fills the gather options from them (``run.options``)."""
    declared = set(parameters.names(path))
    again = {i: parameters_written_again(source(c), declared) for i, c in enumerate(cells(path))
             if c["cell_type"] == "code" and not is_parameters(c)}
    assert {i: found for i, found in again.items() if found} == {}


def test_a_parameter_written_again_is_caught():
    declared = {"log_tail", "cluster"}
    assert parameters_written_again("kube, ev = gather.gather_site(site, run.calls, run.params.cluster)", declared) == []
    assert parameters_written_again("triage.run(site, cluster=run.params.cluster)", declared) == []
    assert parameters_written_again("print(views.log_tail(ev))", declared) == []
    assert parameters_written_again("run = nb.start('x', nb.Parameters(log_tail=log_tail))", declared) == \
        ["log_tail=", "the variable log_tail"]
    assert parameters_written_again("gather.Options(log_tail=int(p.log_tail) or None)", declared) == \
        ["log_tail=", ".log_tail"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_says_what_and_the_symptoms_are_current(path):
    first = cells(path)[0]
    assert first["cell_type"] == "markdown" and source(first).startswith("# ")
    if path.stem in (*catalog.load().sections, catalog.TRIAGE):
        assert catalog.symptoms_block(path.stem) in source(first), \
            "run `python -m runbook_lib.catalog` to refresh the notebook's symptoms"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_section_is_a_markdown_cell_and_one_code_cell(path):
    """After the parameters cell and the start: a short markdown cell, then one code cell, in turn."""
    kinds = [c["cell_type"] for c in cells(path)]
    assert kinds[:3] == ["markdown", "code", "code"] and is_parameters(cells(path)[1])
    assert kinds[3:] == ["markdown", "code"] * ((len(kinds) - 3) // 2), kinds
