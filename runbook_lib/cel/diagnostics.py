"""Errors in cel-go's shape: positions, the caret display, and syntax errors worded like ANTLR's.

cel-go renders an error as ``ERROR: <input>:LINE:COL: message`` followed by the source line and
a caret under the column (``common/error.go``); several errors are sorted by position and joined
by newlines. celpy's parser is lark, so its syntax errors are translated here into the message
cel-go's ANTLR parser gives at the same position for the common cases.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One error at a 1-based line and 0-based column (-1: cel-go's position for empty input)."""

    line: int
    column: int
    message: str

    def display(self, text: str) -> str:
        """cel-go's ``Error.ToDisplayString``: the message, the source line, a caret under it."""
        out = f"ERROR: <input>:{self.line}:{self.column + 1}: {self.message}"
        lines = text.split("\n")
        if text and 1 <= self.line <= len(lines):
            snippet = lines[self.line - 1].replace("\t", " ")
            dots = "".join("\uff0e" if len(ch.encode()) > 1 else "." for ch in snippet[: max(self.column, 0)])
            wide = 0 <= self.column < len(snippet) and len(snippet[self.column].encode()) > 1
            out += f"\n | {snippet}\n | {dots}{'＾' if wide else '^'}"
        return out


def display(issues: list[Issue], text: str) -> str:
    """Several issues as cel-go joins them: sorted by position, one after another."""
    ordered = sorted(issues, key=lambda i: (i.line, i.column))
    return "\n".join(i.display(text) for i in ordered)


def go_quote(text: str) -> str:
    """Go's ``%q`` (strconv.Quote) of a string, as the provider's no-match error prints it."""
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
             '"': '\\"', "\\": "\\\\"}
    out = []
    for ch in text:
        if ch in named:
            out.append(named[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


class Positions:
    """Offsets in the selector text to cel-go's (line, column) pairs."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def at(self, offset: int) -> tuple[int, int]:
        line = 1
        for i, start in enumerate(self.starts):
            if start <= offset:
                line = i + 1
        return line, offset - self.starts[line - 1]

    def skip_blank(self, offset: int) -> int:
        """The first offset at or after ``offset`` that is not whitespace or a ``//`` comment."""
        text, n = self.text, len(self.text)
        while offset < n:
            if text[offset].isspace():
                offset += 1
            elif text.startswith("//", offset):
                end = text.find("\n", offset)
                offset = n if end < 0 else end + 1
            else:
                break
        return offset


# ANTLR's display names in the CEL lexer's token order; lark's terminal names map onto them.
_ANTLR_ORDER = ["'=='", "'!='", "'in'", "'<'", "'<='", "'>='", "'>'", "'&&'", "'||'", "'['", "']'", "'{'",
                "'}'", "'('", "')'", "'.'", "','", "'-'", "'!'", "'?'", "':'", "'+'", "'*'", "'/'", "'%'",
                "'true'", "'false'", "'null'", "NUM_FLOAT", "NUM_INT", "NUM_UINT", "STRING", "BYTES",
                "IDENTIFIER"]
_OPERAND_START = ["'['", "'{'", "'('", "'.'", "'-'", "'!'", "'true'", "'false'", "'null'", "NUM_FLOAT",
                  "NUM_INT", "NUM_UINT", "STRING", "BYTES", "IDENTIFIER"]
_LARK_TO_ANTLR = {"LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('",
                  "RPAR": "')'", "DOT": "'.'", "COMMA": "','", "MINUS": "'-'", "BANG": "'!'", "QMARK": "'?'",
                  "COLON": "':'", "PLUS": "'+'", "STAR": "'*'", "SLASH": "'/'", "PERCENT": "'%'",
                  "IN": "'in'", "LESSTHAN": "'<'", "MORETHAN": "'>'", "__ANON_0": "'||'", "__ANON_1": "'&&'",
                  "__ANON_2": "'<='", "__ANON_3": "'>='", "__ANON_4": "'=='", "__ANON_5": "'!='",
                  "FLOAT_LIT": "NUM_FLOAT", "INT_LIT": "NUM_INT", "UINT_LIT": "NUM_UINT",
                  "STRING_LIT": "STRING", "MLSTRING_LIT": "STRING", "BYTES_LIT": "BYTES", "IDENT": "IDENTIFIER"}
_CLOSERS = {"(": ")", "[": "]", "{": "}"}


def syntax_issue(exc: Exception, pos: Positions) -> Issue:
    """A lark parse error as the syntax error cel-go's ANTLR parser reports at the same place."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken

    text = pos.text
    if isinstance(exc, UnexpectedCharacters):
        offset = exc.pos_in_stream
        ch = text[offset]
        if ch in "\"'":  # an unterminated or malformed string: the lexer consumed the rest of the line
            end = text.find("\n", offset)
            bad = text[offset:] if end < 0 else text[offset:end]
        elif ch in "=&|" and offset + 1 < len(text):  # the first half of '==', '&&', '||'
            bad = text[offset:offset + 2]
        else:
            bad = ch
        return Issue(*pos.at(offset), f"Syntax error: token recognition error at: '{bad}'")
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    at_end = token.type == "$END"
    if at_end and not text:
        return Issue(1, -1, "Syntax error: mismatched input '<EOF>' expecting {" + ", ".join(_OPERAND_START) + "}")
    offset = len(text) if at_end else token.start_pos
    shown = "<EOF>" if at_end else str(token)
    expected = {_LARK_TO_ANTLR.get(name, name) for name in exc.expected}
    if expected & {"IDENTIFIER", "STRING", "NUM_INT"}:  # an operand was due here
        wanted = [t for t in _ANTLR_ORDER if t in _OPERAND_START or (t in ("')'", "']'", "'}'") and t in expected)]
        message = f"mismatched input '{shown}' expecting {{{', '.join(wanted)}}}"
    else:
        closer = _open_bracket(text, offset)
        if closer and at_end:
            message = f"missing '{closer}' at '<EOF>'"
        elif closer:
            message = f"mismatched input '{shown}' expecting '{closer}'"
        else:
            message = f"mismatched input '{shown}' expecting <EOF>"
    return Issue(*pos.at(offset), "Syntax error: " + message)


def _open_bracket(text: str, offset: int) -> str | None:
    """The closer of the innermost bracket still open at ``offset`` (strings and comments skipped)."""
    stack: list[str] = []
    i = 0
    while i < offset:
        ch = text[i]
        if ch in "\"'":
            end = text.find(ch, i + 1)
            while end > 0 and text[end - 1] == "\\":
                end = text.find(ch, end + 1)
            i = offset if end < 0 else end + 1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = offset if end < 0 else end + 1
            continue
        if ch in _CLOSERS:
            stack.append(_CLOSERS[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
        i += 1
    return stack[-1] if stack else None
