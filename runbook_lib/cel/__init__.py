"""Storage selectors: CEL compiled, checked and evaluated the way the Proxmox provider does it.

The provider (``internal/pkg/provider/provision.go``) builds a cel-go environment with exactly
four variables, ``name``, ``node``, ``storageType`` (strings) and ``availableSpace`` (uint, bytes),
parses and type-checks ``storage_selector`` through Talos' ``ParseBooleanExpression`` (the output
type must be exactly ``bool``), then evaluates it once per storage that ``GET
/nodes/{node}/storage`` returns, in that order, and takes the first storage that matches.

Parsing and evaluation are cel-python's (``celpy``, a real CEL implementation). cel-python does
not type-check, so it would happily evaluate ``type == "rbd"`` to false; this package adds the
check cel-go performs on top of celpy's parse tree: identifiers must be declared (``type`` is
CEL's built-in type identifier, so comparing it with a string has no overload), overloads come
from cel-go's standard library (cross-type numeric comparisons such as ``uint > int`` are off,
as in a default ``cel.NewEnv``), the result must be ``bool``. Errors are rendered in cel-go's
shape, ``ERROR: <input>:LINE:COL: message`` with the source line and a caret under the column.

Known differences from cel-go, all in syntax errors: celpy's grammar rejects a trailing comma in
list and map literals, and stops at the first syntax error where cel-go's ANTLR parser may
report follow-up errors; the first error's position and wording follow cel-go's.

Modules: :mod:`.types` (CEL types, cel-go's standard declarations), :mod:`.tree` (celpy's parse
tree shaped like cel-go's), :mod:`.checker` (the type check), :mod:`.diagnostics` (cel-go's error
display, syntax errors), :mod:`.selector` (compile once, evaluate per storage),
:mod:`.provider` (the provider's first-match loop, and why each storage matched).
"""

from __future__ import annotations

from .diagnostics import Issue, display, go_quote
from .provider import NO_MATCH, Pick, Row, explain, first_match, no_match_error, pick, storage_values
from .selector import OUTPUT_NOT_BOOL, EvalError, Literal, Selector, Term, compile_selector
from .types import DECLARED, CelType, format_type, type_name

VARIABLES = tuple(DECLARED)

__all__ = ["VARIABLES", "first_match", "DECLARED", "NO_MATCH", "OUTPUT_NOT_BOOL", "CelType", "EvalError", "Issue", "Literal",
           "Pick", "Row", "Selector", "Term", "compile_selector", "display", "explain", "format_type", "go_quote",
           "no_match_error", "pick", "storage_values", "type_name"]
