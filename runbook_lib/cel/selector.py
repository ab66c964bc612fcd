"""A storage selector: compiled and checked once, then evaluated by cel-python for each storage."""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from .checker import Checker
from .diagnostics import Issue, Positions, display, syntax_issue
from .tree import Node, TreeBuilder, fix_positions
from .types import BOOL, DECLARED, CelType, type_name

OUTPUT_NOT_BOOL = "expression output type is {type}, expected bool"

_ENV_LOCK = threading.Lock()
_EVAL_LOCK = threading.Lock()  # celpy's transpiled programs share one module-level activation
_ENV: Any = None


def _environment():
    """One cel-python environment per process (building its parser takes a noticeable moment).

    celpy's transpiling runner (``CompiledRunner``) evaluates several times faster than its tree
    interpreter; it needs celpy's one shared parser to build its own tree class, so it is used
    unless something in this process built that parser for the interpreter first.
    """
    global _ENV
    with _ENV_LOCK:
        if _ENV is None:
            import celpy
            from celpy.celparser import CELParser

            # the transpiled runner logs every evaluation error at ERROR level; the error is
            # reported here instead (EvalError), so keep celpy from printing it a second time
            logging.getLogger("celpy").addHandler(logging.NullHandler())
            logging.getLogger("celpy").propagate = False
            parser = CELParser.CEL_PARSER
            runner = celpy.CompiledRunner
            if parser is not None and parser.options.tree_class is not runner.tree_node_class:
                runner = celpy.InterpretedRunner
            _ENV = celpy.Environment(runner_class=runner)
        return _ENV


class EvalError(Exception):
    """Evaluating a selector failed for one storage (cel-go would return the error to the provider)."""


@dataclass(frozen=True)
class Literal:
    """A string literal of the selector and what it is compared with (``name``, ``storageType`` ...)."""

    value: str
    role: str  # the variable it is compared with, or "" when that cannot be told
    offset: int
    op: str = ""  # how: _==_, _!=_, @in, startsWith, endsWith, contains, matches


@dataclass(frozen=True)
class Term:
    """A top-level operand of the selector's ``&&`` / ``||`` chain, with its source text."""

    text: str
    variables: tuple[str, ...]


class Selector:
    """A compiled storage selector: its errors in cel-go's shape, or a program to evaluate."""

    def __init__(self, text: str, declared: dict[str, CelType] | None = None):
        self.text = text
        self.declared = dict(DECLARED if declared is None else declared)
        self.issues: list[Issue] = []
        self.output_type: CelType | None = None
        self.root: Node | None = None
        self.tree = None
        self.stage = "ok"  # ok | syntax | check | output
        self._program = None
        self._memo: dict[tuple, bool] = {}
        self._terms: list[tuple[Term, "Selector"]] | None = None
        self._variables: tuple[str, ...] | None = None
        self._lock = threading.Lock()
        self._compile()

    # --- compiling
    def _compile(self) -> None:
        from celpy.celparser import CELParser
        from lark.exceptions import UnexpectedInput

        env = _environment()
        pos = Positions(self.text)
        try:
            self.tree = CELParser.CEL_PARSER.parse(self.text)
        except UnexpectedInput as exc:
            self.issues = [syntax_issue(exc, pos)]
            self.stage = "syntax"
            return
        fix_positions(self.tree, self.text)
        builder = TreeBuilder(pos)
        self.root = builder.build(self.tree)
        if builder.issues:
            self.issues = builder.issues
            self.stage = "syntax"
            return
        checker = Checker(pos, self.declared)
        checker.check(self.root)
        if checker.issues:
            self.issues = checker.issues
            self.stage = "check"
            return
        self.output_type = checker.substitute(checker.get(self.root), True)
        if self.output_type != BOOL:
            self.stage = "output"
            return
        self._program = env.program(self.tree)

    @property
    def ok(self) -> bool:
        return self.stage == "ok"

    @property
    def error(self) -> str:
        """The error text the provider gets from ParseBooleanExpression ('' when it compiles)."""
        if self.stage == "output":
            return OUTPUT_NOT_BOOL.format(type=type_name(self.output_type))
        return display(self.issues, self.text) if self.issues else ""

    # --- what the selector refers to
    def nodes(self) -> Iterable[Node]:
        stack = [self.root] if self.root is not None else []
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.args)
            if node.target is not None:
                stack.append(node.target)

    def identifiers(self) -> set[str]:
        """Names used as identifiers (not calls, not fields)."""
        return {n.name.lstrip(".") for n in self.nodes() if n.kind == "ident"}

    def variables(self) -> tuple[str, ...]:
        """The declared variables the selector reads (what its result can depend on)."""
        if self._variables is None:
            used = self.identifiers()
            self._variables = tuple(v for v in self.declared if v in used)
        return self._variables

    def literals(self) -> list[Literal]:
        """String literals, each with the variable it is compared with when that is plain to see."""
        from celpy.evaluation import celstr
        from lark import Token

        roles: dict[int, tuple[str, str]] = {}
        for node in self.nodes():
            if node.kind != "call":
                continue
            operands = ([node.target] if node.target is not None else []) + node.args
            idents = [o.name for o in operands if o.kind == "ident" and o.name in self.declared]
            if node.name in ("_==_", "_!=_", "@in", "startsWith", "endsWith", "contains", "matches") and idents:
                for o in operands:
                    for lit in ([o] if o.kind == "literal" else o.args if o.kind == "list" else []):
                        roles[id(lit)] = (idents[0], node.name)
        out = []
        for node in self.nodes():
            if node.kind == "literal" and node.name in ("STRING_LIT", "MLSTRING_LIT"):
                value = str(celstr(Token(node.name, node.value)))
                role, op = roles.get(id(node), ("", ""))
                out.append(Literal(value, role, node.offset, op))
        return sorted(out, key=lambda lit: lit.offset)

    def terms(self) -> list[tuple[Term, "Selector"]]:
        """The operands of the top-level ``&&`` or ``||`` chain (the whole selector otherwise)."""
        if self._terms is None:
            root = self.root
            op = root.name if root is not None and root.kind == "call" and root.name in ("_&&_", "_||_") else ""
            parts: list[Node] = []

            def flatten(node: Node) -> None:
                if op and node.kind == "call" and node.name == op:
                    for arg in node.args:
                        flatten(arg)
                else:
                    parts.append(node)

            if root is not None:
                flatten(root)
            terms = []
            for part in parts:
                text = self.text[part.start:part.end].strip()
                sub = Selector(text, self.declared) if len(parts) > 1 else self
                terms.append((Term(text, sub.variables()), sub))
            self._terms = terms
        return self._terms

    @property
    def chain(self) -> str:
        """``&&`` or ``||`` when the selector is a chain of terms, else ''."""
        root = self.root
        if root is not None and root.kind == "call" and root.name in ("_&&_", "_||_"):
            return root.name.strip("_")
        return ""

    # --- evaluating
    def evaluate(self, values: dict[str, Any]) -> bool:
        """The selector for one storage: ``values`` has name, node, storageType, availableSpace.

        Results are memoised on the variables the selector reads, so a shared pool seen from
        every node is evaluated once. Raises :class:`EvalError` when evaluation fails.
        """
        if self._program is None:
            raise EvalError(self.error or "the selector did not compile")
        key = tuple(values.get(v) for v in self.variables())
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        result = self._run(values)
        with self._lock:
            self._memo[key] = result
        return result

    def _run(self, values: dict[str, Any]) -> bool:
        import celpy.celtypes as ct
        from celpy.evaluation import CELEvalError

        activation = {"name": ct.StringType(values.get("name", "")),
                      "node": ct.StringType(values.get("node", "")),
                      "storageType": ct.StringType(values.get("storageType", "")),
                      "availableSpace": ct.UintType(int(values.get("availableSpace", 0)))}
        try:
            with _EVAL_LOCK:
                out = self._program.evaluate(activation)
        except CELEvalError as exc:
            raise EvalError(_eval_message(exc)) from None
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise EvalError(f"{type(exc).__name__}: {exc}") from None
        if isinstance(out, CELEvalError):
            raise EvalError(_eval_message(out))
        if not isinstance(out, (bool, ct.BoolType)):
            raise EvalError(f"expression output type is {type(out).__name__}, expected bool")
        return bool(out)


def _eval_message(exc: Exception) -> str:
    args = exc.args
    # the transpiled runner wraps the real error: ("evaluation error", its type, its args)
    if len(args) == 3 and args[0] == "evaluation error" and isinstance(args[2], tuple) and args[2]:
        args = args[2]
    return str(args[0]) if args else type(exc).__name__


@functools.lru_cache(maxsize=512)
def compile_selector(text: str) -> Selector:
    """Compile ``text`` against the provider's four variables.

    One object per text (cached), so the memo of its results is shared by every node and caller."""
    return Selector(text)
