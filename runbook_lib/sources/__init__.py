"""Sources: the only code that talks to real systems.

Each module wraps one protocol (``ssh``, ``docker`` over SSH, ``proxmox``, ``omni`` through
omnictl, ``http``, ``net`` for DNS, TCP, curl and netcat, ``kube``) and follows the same rules: every
call has a deadline enforced locally, every call leaves a :class:`~runbook_lib.calls.Call` in the
caller's ``CallLog``, and a failure is raised as a :class:`~runbook_lib.errors.SourceError` subclass
naming the target and the reason, its ``kind`` an :class:`~runbook_lib.outcome.Outcome` (a probe
returns its outcome instead: what it found is the evidence). ``omniconfig`` reads omnictl's local
files. Gathering, the model and the checks never open a socket or run a program themselves
(tests/test_layout.py holds them to it).

This module holds what the command-running sources share: :class:`CommandResult`,
:class:`LineSplitter` (a byte stream to decoded lines, with bounded memory), :class:`Tail` (the
last lines of a stream) and :class:`Bounded` (raw bytes kept up to a limit).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

REPLACEMENT = "\ufffd"
_RAW_REPLACEMENT = REPLACEMENT.encode("utf-8")


@dataclass
class CommandResult:
    """What a command left behind: exit code, output (whole, or a short tail for streams), sizes."""

    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float
    bytes_in: int = 0  # raw bytes received on stdout and stderr together
    truncated: bool = False  # stdout/stderr hold less than the command printed
    replaced: int = 0  # undecodable byte sequences replaced by U+FFFD
    stdout_lines: int = 0  # lines seen on each stream (streams only)
    stderr_lines: int = 0
    cut_lines: int = 0  # lines longer than max_line, delivered cut

    @property
    def ok(self) -> bool:
        return self.rc == 0


def decode(raw: bytes) -> tuple[str, int]:
    """UTF-8 with undecodable bytes replaced; returns the text and how many replacements were made."""
    text = raw.decode("utf-8", errors="replace")
    if REPLACEMENT not in text:
        return text, 0
    return text, text.count(REPLACEMENT) - raw.count(_RAW_REPLACEMENT)


def _complete_prefix(raw: bytes) -> int:
    """Length of ``raw`` without a UTF-8 sequence left incomplete at its end (by a cut)."""
    n = len(raw)
    for back in range(1, min(4, n) + 1):
        byte = raw[n - back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead byte
            continue
        if byte < 0x80:
            return n
        need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return n if back >= need else n - back
    return n


def cut_marker(dropped: int) -> str:
    """The suffix a cut line carries, saying how much of it was dropped."""
    return f" \u2026[{dropped} bytes cut]"


class LineSplitter:
    """Splits one byte stream into lines incrementally, holding at most ``max_line`` bytes.

    ``feed()`` takes chunks as they arrive and hands every batch of complete lines (without
    their newline; a trailing ``\\r`` is dropped too) to ``on_lines(list_of_str)``. A line longer
    than ``max_line`` bytes is delivered cut to ``max_line`` bytes followed by :func:`cut_marker`;
    the rest of it is counted, never stored. ``close()`` delivers a last line without a newline.
    """

    def __init__(self, on_lines: Callable[[list[str]], None], max_line: int = 65536):
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self._on_lines = on_lines
        self.max_line = max_line
        self._buf = bytearray()  # the start of a line whose newline has not arrived yet
        self._dropped = 0  # bytes of the current (over-long) line thrown away
        self.lines = 0
        self.cut = 0
        self.replaced = 0

    def feed(self, chunk: bytes) -> None:
        last = chunk.rfind(b"\n")
        if last < 0:
            self._take(chunk)
            return
        if self._dropped:  # finish the over-long line first, then continue normally
            first = chunk.find(b"\n")
            self._take(chunk[:first])
            self.lines += 1
            self._on_lines([self._finish_cut()])
            chunk, last = chunk[first + 1 :], last - first - 1
            if last < 0:
                self._take(chunk)
                return
        region = bytes(self._buf) + chunk[:last] if self._buf else chunk[:last]
        self._buf.clear()
        pieces = region.split(b"\n")
        if max(map(len, pieces)) <= self.max_line:  # the common case: decode in one go
            text, replaced = decode(region)
            self.replaced += replaced
            lines = text.split("\n")
        else:
            lines = []
            for piece in pieces:
                if len(piece) > self.max_line:
                    self._buf += piece[: self.max_line]
                    self._dropped = len(piece) - self.max_line
                    lines.append(self._finish_cut())
                else:
                    text, replaced = decode(piece)
                    self.replaced += replaced
                    lines.append(text)
        if b"\r" in region:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        self.lines += len(lines)
        self._on_lines(lines)
        self._take(chunk[last + 1 :])

    def close(self) -> None:
        """Deliver what is left of a last line that had no newline."""
        if self._dropped:
            self.lines += 1
            self._on_lines([self._finish_cut()])
        elif self._buf:
            text, replaced = decode(bytes(self._buf).removesuffix(b"\r"))
            self.replaced += replaced
            self._buf.clear()
            self.lines += 1
            self._on_lines([text])

    def _take(self, piece: bytes) -> None:
        """Add bytes of an unfinished line, keeping at most ``max_line`` of them."""
        if not piece:
            return
        room = self.max_line - len(self._buf)
        if self._dropped or len(piece) > room:
            kept = max(room, 0) if not self._dropped else 0
            self._buf += piece[:kept]
            self._dropped += len(piece) - kept
        else:
            self._buf += piece

    def _finish_cut(self) -> str:
        raw = bytes(self._buf)
        keep = _complete_prefix(raw)
        text, replaced = decode(raw[:keep])
        self.replaced += replaced
        dropped = self._dropped + len(raw) - keep
        self._buf.clear()
        self._dropped = 0
        self.cut += 1
        return text + cut_marker(dropped)


class Tail:
    """The last ``lines`` lines of a stream, at most ``chars`` characters in all."""

    def __init__(self, lines: int = 100, chars: int = 16384):
        self._lines: deque[str] = deque(maxlen=lines)
        self._chars = chars
        self._seen = 0

    def extend(self, lines: list[str]) -> None:
        self._seen += len(lines)
        self._lines.extend(lines)

    @property
    def dropped(self) -> bool:
        return self._seen > len(self._lines) or sum(map(len, self._lines)) > self._chars

    def text(self) -> str:
        out = "\n".join(self._lines)
        return out[-self._chars :] if len(out) > self._chars else out


@dataclass
class Bounded:
    """Raw bytes kept up to a limit; the rest is counted, not stored."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    overflow: int = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.overflow += len(chunk) - max(room, 0)


__all__ = ["CommandResult", "LineSplitter", "Tail", "Bounded", "decode", "cut_marker"]
