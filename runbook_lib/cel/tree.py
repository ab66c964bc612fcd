"""celpy's lark parse tree to expressions shaped like cel-go's parser output.

Operators become calls named as cel-go names them (``_==_``, ``@in``, ``_?_:_``), each placed at
the offset cel-go gives it (the operator, the opening parenthesis of a call, the dot of a field
selection), so checker errors point where cel-go's do. Macros (``has``, ``all``, ``exists``,
``exists_one``, ``map``, ``filter``) are recognised as cel-go's parser does, and what that parser
rejects by itself (reserved words, a macro without a variable name, out-of-range literals) is
reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Issue, Positions
from .types import BOOL, BYTES, DOUBLE, INT, MACROS, NULL, RESERVED, STRING, UINT


@dataclass(eq=False)
class Node:
    """An expression as cel-go's parser builds it (macros expanded), with its source offset."""

    kind: str  # literal ident select call list map struct comprehension
    offset: int
    name: str = ""  # identifier, function, field, macro, or the literal's type
    args: list["Node"] = field(default_factory=list)
    target: "Node | None" = None  # a member call's receiver, a select's operand, a macro's range
    value: Any = None  # a literal's token text; a macro's iteration variable
    test_only: bool = False  # has()
    start: int = -1  # the node's source text is text[start:end] (for terms)
    end: int = -1


LITERAL_TYPES = {"INT_LIT": INT, "UINT_LIT": UINT, "FLOAT_LIT": DOUBLE, "STRING_LIT": STRING,
                  "MLSTRING_LIT": STRING, "BYTES_LIT": BYTES, "BOOL_LIT": BOOL, "NULL_LIT": NULL}
_BINARY = {"relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
           "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in", "addition_add": "_+_",
           "addition_sub": "_-_", "multiplication_mul": "_*_", "multiplication_div": "_/_",
           "multiplication_mod": "_%_"}


class TreeBuilder:
    """celpy's lark tree to :class:`Node` trees, reporting what cel-go's parser rejects itself."""

    def __init__(self, pos: Positions):
        self.pos = pos
        self.issues: list[Issue] = []

    def error(self, offset: int, message: str) -> None:
        self.issues.append(Issue(*self.pos.at(offset), message))

    def build(self, tree) -> Node:
        from lark import Token

        kind = tree.data
        kids = tree.children
        if kind == "expr":
            node = self.build(kids[0])
            if len(kids) == 3:
                q = self.pos.skip_blank(kids[0].meta.end_pos)
                node = Node("call", q, "_?_:_", [node, self.build(kids[1]), self.build(kids[2])])
            return self._spanned(node, tree)
        if kind in ("conditionalor", "conditionaland"):
            if len(kids) == 1:
                return self.build(kids[0])
            op = self.pos.skip_blank(kids[0].meta.end_pos)
            name = "_||_" if kind == "conditionalor" else "_&&_"
            return self._spanned(Node("call", op, name, [self.build(kids[0]), self.build(kids[1])]), tree)
        if kind in ("relation", "addition", "multiplication"):
            if len(kids) == 1:
                return self.build(kids[0])
            op_tree, right = kids
            left = self.build(op_tree.children[0])
            op_text = op_tree.data.split("_", 1)[1]
            width = {"lt": 1, "gt": 1, "add": 1, "sub": 1, "mul": 1, "div": 1, "mod": 1}.get(op_text, 2)
            offset = op_tree.meta.end_pos - width
            return self._spanned(Node("call", offset, _BINARY[op_tree.data], [left, self.build(right)]), tree)
        if kind == "unary":
            if len(kids) == 1:
                return self.build(kids[0])
            op = kids[0]  # a run of the same prefix operator: an even count cancels out
            count, inner = 0, tree
            while len(inner.children) == 2 and inner.children[0].data == op.data:
                count += 1
                inner = inner.children[1]
            operand = self.build(inner)
            if count % 2 == 0:
                return operand
            name = "!_" if op.data == "unary_not" else "-_"
            return self._spanned(Node("call", op.meta.start_pos, name, [operand]), tree)
        if kind in ("member", "primary"):
            return self.build(kids[0])
        if kind == "member_dot":
            operand = self.build(kids[0])
            dot = self.pos.skip_blank(kids[0].meta.end_pos)
            return self._spanned(Node("select", dot, str(kids[1]), target=operand), tree)
        if kind == "member_dot_arg":
            target = self.build(kids[0])
            ident = kids[1]
            args = self._args(kids[2] if len(kids) > 2 else None)
            open_paren = self.pos.skip_blank(ident.end_pos)
            return self._spanned(self._call_or_macro(str(ident), open_paren, target, args), tree)
        if kind == "member_index":
            operand = self.build(kids[0])
            bracket = self.pos.skip_blank(kids[0].meta.end_pos)
            return self._spanned(Node("call", bracket, "_[_]", [operand, self.build(kids[1])]), tree)
        if kind == "member_object":
            brace = self.pos.skip_blank(kids[0].meta.end_pos)
            name = qualified_name(self.build(kids[0])) or ""
            values = [self.build(c) for c in (kids[1].children[1::2] if len(kids) > 1 else [])]
            return self._spanned(Node("struct", brace, name, values), tree)
        if kind in ("ident", "dot_ident", "ident_arg", "dot_ident_arg"):
            tok = kids[0]
            name = str(tok)
            if name in RESERVED:
                self.error(tree.meta.start_pos, f"reserved identifier: {name}")
            dot = "." if kind.startswith("dot_") else ""
            if kind.endswith("_arg"):
                args = self._args(kids[1] if len(kids) > 1 else None)
                open_paren = self.pos.skip_blank(tok.end_pos)
                return self._spanned(self._call_or_macro(dot + name, open_paren, None, args), tree)
            return self._spanned(Node("ident", tree.meta.start_pos, dot + name), tree)
        if kind == "paren_expr":
            return self.build(kids[0])
        if kind == "list_lit":
            return self._spanned(Node("list", tree.meta.start_pos, args=self._args(kids[0] if kids else None)), tree)
        if kind == "map_lit":
            entries = [self.build(c) for c in kids[0].children] if kids else []
            return self._spanned(Node("map", tree.meta.start_pos, args=entries), tree)
        if kind == "literal":
            tok: Token = kids[0]
            return self._spanned(self._literal(tok), tree)
        raise ValueError(f"unexpected parse tree node {kind!r}")  # pragma: no cover - grammar is fixed

    @staticmethod
    def _spanned(node: Node, tree) -> Node:
        """Record where the node's source text lies (the innermost tree that produced it wins)."""
        if node.end < 0:
            node.start, node.end = tree.meta.start_pos, tree.meta.end_pos
        return node

    def _args(self, exprlist) -> list[Node]:
        return [self.build(c) for c in exprlist.children] if exprlist is not None else []

    def _literal(self, tok) -> Node:
        text = str(tok)
        start = tok.start_pos
        if tok.type == "UINT_LIT" and text.startswith("-"):  # cel-go: unary minus on a uint literal
            return Node("call", start, "-_", [Node("literal", start + 1, "UINT_LIT", value=text[1:])])
        if tok.type in ("INT_LIT", "UINT_LIT"):
            digits = text.rstrip("uU")
            negative = digits.startswith("-")
            number = int(digits.lstrip("-"), 16 if "x" in digits.lower() else 10)
            limit = (1 << 64) - 1 if tok.type == "UINT_LIT" else (1 << 63) - (0 if negative else 1)
            if number > limit:
                self.error(start, f"invalid {'uint' if tok.type == 'UINT_LIT' else 'int'} literal")
        return Node("literal", start, tok.type, value=text)

    def _call_or_macro(self, name: str, offset: int, target: Node | None, args: list[Node]) -> Node:
        if (name, target is not None, len(args)) not in MACROS:
            return Node("call", offset, name, args, target=target)
        if name == "has":
            arg = args[0]
            if arg.kind != "select":
                self.error(arg.offset, "invalid argument to has() macro")
                return Node("call", offset, name, args)
            return Node("comprehension", offset, "has", target=arg)
        var = args[0]
        if var.kind != "ident":
            message = "argument is not an identifier" if name in ("map", "filter") else "argument must be a simple name"
            self.error(var.offset, message)
            return Node("call", offset, name, args, target=target)
        return Node("comprehension", offset, name, args[1:], target=target, value=var.name)


def fix_positions(tree, text: str) -> None:
    """Give ``true``/``false`` tokens the positions celpy's lexer callback drops, and widen spans.

    celpy turns IDENT tokens spelled ``true``/``false`` into new BOOL_LIT tokens without source
    positions; the trees above them then carry incomplete spans. Tokens come in source order, so
    each missing one is found after the previous token's end.
    """
    from lark import Token, Tree

    cursor = 0

    def visit(node) -> tuple[int, int] | None:
        nonlocal cursor
        if isinstance(node, Token):
            if node.start_pos is None:
                node.start_pos = text.find(str(node), cursor)
                node.end_pos = node.start_pos + len(str(node))
            cursor = max(cursor, node.end_pos)
            return node.start_pos, node.end_pos
        spans = [s for s in (visit(c) for c in node.children) if s is not None]
        meta = node.meta
        start, end = getattr(meta, "start_pos", None), getattr(meta, "end_pos", None)
        if spans:
            start = min([s[0] for s in spans] + ([start] if start is not None else []))
            end = max([s[1] for s in spans] + ([end] if end is not None else []))
        if start is None:
            return None
        meta.start_pos, meta.end_pos = start, end
        meta.empty = False
        return start, end

    assert isinstance(tree, Tree)
    visit(tree)


def qualified_name(node: Node) -> str | None:
    if node.kind == "ident":
        return node.name.lstrip(".")
    if node.kind == "select" and not node.test_only and node.target is not None:
        prefix = qualified_name(node.target)
        return f"{prefix}.{node.name}" if prefix else None
    return None
