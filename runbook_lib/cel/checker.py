"""The type check cel-go performs and celpy does not (checker/checker.go, checker/types.go).

Identifiers must be declared; functions resolve against cel-go's standard overloads with type
parameters unified as cel-go unifies them; ``&&``/``||`` want bools; comprehension macros scope
their variable. Only what a storage selector can reach is covered: no protobuf messages, no
optional types.
"""

from __future__ import annotations

from .diagnostics import Issue, Positions
from .tree import LITERAL_TYPES, Node, qualified_name
from .types import (
    BOOL,
    CROSS_TYPE,
    DYN,
    ERROR,
    FUNCTIONS,
    INT,
    SCALARS,
    TYPE_IDENTS,
    CelType,
    Overload,
    format_type,
    list_of,
    map_of,
    param,
    type_of,
)


class Checker:
    """The parts of cel-go's checker (checker/checker.go, types.go) a selector can reach."""

    def __init__(self, pos: Positions, declared: dict[str, CelType]):
        self.pos = pos
        self.declared = declared
        self.mapping: dict[str, CelType] = {}
        self.types: dict[int, CelType] = {}
        self.scopes: list[dict[str, CelType]] = []
        self.issues: list[Issue] = []
        self.counter = 0

    # --- bookkeeping
    def error(self, node: Node, message: str) -> None:
        self.issues.append(Issue(*self.pos.at(node.offset), message))

    def set(self, node: Node, t: CelType) -> CelType:
        self.types[id(node)] = t
        return t

    def get(self, node: Node) -> CelType:
        return self.types[id(node)]

    def fresh(self) -> CelType:
        self.counter += 1
        return param(f"_var{self.counter - 1}")

    def lookup(self, name: str) -> CelType | None:
        name = name.lstrip(".")
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in self.declared:
            return self.declared[name]
        if name in TYPE_IDENTS:
            return type_of(TYPE_IDENTS[name])
        return None

    # --- type algebra (checker/types.go)
    def substitute(self, t: CelType, to_dyn: bool) -> CelType:
        if t.kind == "param":
            if t.name in self.mapping:
                return self.substitute(self.mapping[t.name], to_dyn)
            return DYN if to_dyn else t
        if t.params:
            return CelType(t.kind, tuple(self.substitute(p, to_dyn) for p in t.params), t.name)
        return t

    def _not_referenced(self, m: dict, t: CelType, within: CelType) -> bool:
        if t == within:
            return False
        if within.kind == "param":
            return True if within.name not in m else self._not_referenced(m, t, m[within.name])
        return all(self._not_referenced(m, t, p) for p in within.params)

    @staticmethod
    def _less_specific(t1: CelType, t2: CelType) -> bool:
        if t1.kind in ("dyn", "param"):
            return True
        if t2.kind in ("dyn", "param") or t1.kind != t2.kind:
            return False
        if t1.kind in ("list", "map"):
            return all(Checker._less_specific(a, b) for a, b in zip(t1.params, t2.params))
        return t1.kind == "type" or t1 == t2

    def _assignable(self, m: dict, t1: CelType, t2: CelType) -> bool:
        if t2.kind == "param":
            sub = m.get(t2.name)
            if sub is not None:
                if self._less_specific(t1, sub) and self._not_referenced(m, t2, t1):
                    m[t2.name] = t1
                    return True
                return self._assignable(m, t1, sub)
            if self._not_referenced(m, t2, t1):
                m[t2.name] = t1
                return True
        if t1.kind == "param":
            sub = m.get(t1.name)
            if sub is not None:
                return self._assignable(m, sub, t2)
            if self._not_referenced(m, t1, t2):
                m[t1.name] = t2
                return True
        if t1.kind in ("dyn", "error") or t2.kind in ("dyn", "error"):
            return True
        if t1.kind == "null" or t2.kind == "null":
            other = t2 if t1.kind == "null" else t1
            return other.kind in ("null", "duration", "timestamp")
        if t1.kind in SCALARS:
            return t1 == t2
        if t1.kind == "type":
            return t2.kind == "type"
        if t1.kind in ("list", "map"):
            return t1.kind == t2.kind and all(self._assignable(m, a, b) for a, b in zip(t1.params, t2.params))
        return t1 == t2

    def assignable(self, t1: CelType, t2: CelType) -> bool:
        trial = dict(self.mapping)
        if self._assignable(trial, t1, t2):
            self.mapping = trial
            return True
        return False

    def assignable_list(self, l1: list[CelType], l2: list[CelType]) -> bool:
        trial = dict(self.mapping)
        if len(l1) == len(l2) and all(self._assignable(trial, a, b) for a, b in zip(l1, l2)):
            self.mapping = trial
            return True
        return False

    def join(self, previous: CelType | None, current: CelType) -> CelType:
        if previous is None:
            return current
        if self.assignable(previous, current):
            return previous if self._less_specific(previous, current) else current
        return DYN  # cel.NewEnv allows mixed element types in list and map literals

    # --- expressions
    def check(self, node: Node) -> CelType:
        kind = node.kind
        if kind == "literal":
            return self.set(node, LITERAL_TYPES[node.name])
        if kind == "ident":
            t = self.lookup(node.name)
            if t is None:
                self.error(node, f"undeclared reference to '{node.name}' (in container '')")
                return self.set(node, ERROR)
            return self.set(node, t)
        if kind == "select":
            return self.check_select(node)
        if kind == "call":
            return self.check_call(node)
        if kind == "list":
            elem = None
            for item in node.args:
                elem = self.join(elem, self.check(item))
            return self.set(node, list_of(elem if elem is not None else self.fresh()))
        if kind == "map":
            key = value = None
            for i, item in enumerate(node.args):
                if i % 2 == 0:
                    key = self.join(key, self.check(item))
                else:
                    value = self.join(value, self.check(item))
            if key is None:
                return self.set(node, map_of(self.fresh(), self.fresh()))
            return self.set(node, map_of(key, value or DYN))
        if kind == "struct":
            return self.check_struct(node)
        return self.check_macro(node)

    def check_select(self, node: Node) -> CelType:
        qualified = qualified_name(node)
        if qualified is not None and not node.test_only:
            t = self.lookup(qualified)
            if t is not None:
                return self.set(node, t)
        operand = self.substitute(self.check(node.target), False)
        if operand.kind == "map":
            result = operand.params[1]
        elif operand.kind == "param":
            self.assignable(DYN, operand)
            result = DYN
        else:
            if operand.kind not in ("dyn", "error"):
                self.error(node, f"type '{format_type(operand)}' does not support field selection")
            result = DYN
        return self.set(node, BOOL if node.test_only else self.substitute(result, False))

    def check_call(self, node: Node) -> CelType:
        for arg in node.args:
            self.check(arg)
        if node.target is not None:
            self.check(node.target)
        overloads = FUNCTIONS.get(node.name.lstrip("."))
        if overloads is None:
            self.error(node, f"undeclared reference to '{node.name}' (in container '')")
            return self.set(node, ERROR)
        return self.set(node, self.resolve(node, overloads))

    def resolve(self, node: Node, overloads: list[Overload]) -> CelType:
        member = node.target is not None
        args = ([node.target] if member else []) + node.args
        arg_types = [self.get(a) for a in args]
        if node.name in ("_&&_", "_||_"):
            result = BOOL
            for arg, t in zip(args, arg_types):
                if not self.assignable(t, BOOL):
                    self.issues.append(Issue(*self.pos.at(arg.offset),
                                             f"expected type 'bool' but found '{format_type(t)}'"))
                    result = ERROR
            return result
        result: CelType | None = None
        for ov in overloads:
            if ov.id in CROSS_TYPE or ov.member != member:
                continue
            fresh = {p: self.fresh() for p in ov.params}
            candidate = [instantiate(t, fresh) for t in ov.args]
            if self.assignable_list(arg_types, candidate):
                rt = self.substitute(instantiate(ov.result, fresh), False)
                if result is None:
                    result = rt
                elif result.kind != "dyn" and rt != result:
                    result = DYN
        if result is None:
            shown = [format_type(self.substitute(t, True)) for t in arg_types]
            signature = (f"{shown[0]}.({', '.join(shown[1:])})" if member else f"({', '.join(shown)})")
            self.error(node, f"found no matching overload for '{node.name}' applied to '{signature}'")
            return ERROR
        return result

    def check_struct(self, node: Node) -> CelType:
        for value in node.args:
            self.check(value)
        t = self.lookup(node.name) if node.name else None
        if t is None:
            self.error(node, f"undeclared reference to '{node.name}' (in container '')")
        elif t.kind != "type":
            self.error(node, f"'{node.name}' is not a type")
        else:
            self.error(node, f"'{node.name}' is not a message type")
        return self.set(node, ERROR)

    def check_macro(self, node: Node) -> CelType:
        if node.name == "has":
            sel = node.target
            sel.test_only = True
            self.check_select(sel)
            return self.set(node, BOOL)
        range_type = self.substitute(self.check(node.target), False)
        if range_type.kind == "list":
            var_type = range_type.params[0]
        elif range_type.kind == "map":
            var_type = range_type.params[0]
        elif range_type.kind in ("dyn", "error", "param"):
            var_type = DYN
        else:
            self.error(node.target, f"expression of type '{format_type(range_type)}' cannot be range of a "
                                    "comprehension (must be list, map, or dynamic)")
            var_type = ERROR
        self.scopes.append({"__result__": BOOL, node.value: var_type})
        try:
            bodies = [self.check(b) for b in node.args]
        finally:
            self.scopes.pop()
        if node.name in ("all", "exists"):
            pred = node.args[0]
            if not self.assignable(bodies[0], BOOL):
                self.issues.append(Issue(*self.pos.at(pred.offset),
                                         f"expected type 'bool' but found '{format_type(bodies[0])}'"))
            return self.set(node, BOOL)
        if node.name == "map" and len(bodies) == 1:
            return self.set(node, list_of(bodies[0]))
        # exists_one, filter and map with a filter run the predicate through the ternary operator
        result = {"exists_one": INT, "filter": list_of(var_type), "map": list_of(bodies[-1])}[node.name]
        if not self.assignable(bodies[0], BOOL):
            shown = f"({format_type(bodies[0])}, {format_type(result)}, {format_type(result)})"
            self.error(node, f"found no matching overload for '_?_:_' applied to '{shown}'")
        return self.set(node, BOOL if node.name == "exists_one" else result)


def instantiate(t: CelType, fresh: dict[str, CelType]) -> CelType:
    if t.kind == "param":
        return fresh.get(t.name, t)
    if t.params:
        return CelType(t.kind, tuple(instantiate(p, fresh) for p in t.params), t.name)
    return t
