"""Evidence: what the sources gathered, by name, or why a piece could not be had.

Gathering code fills an :class:`Evidence`; checks read it. A check that asks for a piece that
failed gets :class:`MissingEvidence`, which the check runner turns into an ``unknown`` finding
carrying the reason, so a dead SSH host never becomes a traceback in the verdict.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import RunbookError


class MissingEvidence(RunbookError):
    """A check needed a piece of evidence that could not be gathered."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class Evidence:
    def __init__(self, items: dict[str, Any] | None = None, errors: dict[str, str] | None = None):
        self._items: dict[str, Any] = dict(items or {})
        self._errors: dict[str, str] = dict(errors or {})

    def put(self, name: str, value: Any) -> Any:
        self._items[name] = value
        self._errors.pop(name, None)
        return value

    def fail(self, name: str, reason: str) -> None:
        self._items.pop(name, None)
        self._errors[name] = reason

    def collect(self, name: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """Run ``fn`` and keep its result under ``name``; a :class:`RunbookError` is kept as the reason."""
        try:
            return self.put(name, fn(*args, **kwargs))
        except RunbookError as exc:
            self.fail(name, str(exc))
            return None

    def get(self, name: str) -> Any:
        if name in self._items:
            return self._items[name]
        raise MissingEvidence(name, self._errors.get(name, "was not gathered"))

    def has(self, name: str) -> bool:
        return name in self._items

    def error(self, name: str) -> str | None:
        return self._errors.get(name)

    def optional(self, name: str, default: Any = None) -> Any:
        return self._items.get(name, default)

    @property
    def errors(self) -> dict[str, str]:
        return dict(self._errors)

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._errors))

    def to_dict(self) -> dict:
        return {"items": dict(self._items), "errors": dict(self._errors)}

    @classmethod
    def from_dict(cls, d: dict) -> "Evidence":
        return cls(d.get("items"), d.get("errors"))


# --- the evidence a record keeps (docs/contracts.md, "evidence.json") ---------------------------

EVIDENCE_FORMAT = "omni-runbooks/evidence"
EVIDENCE_FILE = "evidence.json"  # what a notebook writes beside its verdict JSON for the runner
EVIDENCE_VERSION = 1  # raise it when a reader of version N could misread what a writer of N+1 puts


class EvidenceFormatError(RunbookError):
    """A saved evidence document that this version cannot read without misreading it."""


def to_document(sections: dict[str, Evidence], *, runbook: str, run_id: str = "", gathered: str = "") -> dict:
    """What a record keeps of the evidence its verdict was decided on: every section's items and
    the reasons the missing ones could not be had, as JSON-ready data (scrubbed by the writer)."""
    return {"format": EVIDENCE_FORMAT, "version": EVIDENCE_VERSION, "runbook": runbook, "run_id": run_id,
            "gathered": gathered, "sections": {name: ev.to_dict() for name, ev in sections.items()}}


def from_document(doc: Any, where: str = "evidence") -> dict[str, Evidence]:
    """The sections of a saved evidence document; an unknown format or a version this code does not
    read is refused by name, never guessed at."""
    if not isinstance(doc, dict) or doc.get("format") != EVIDENCE_FORMAT:
        raise EvidenceFormatError(f"{where}: not an evidence document (format {EVIDENCE_FORMAT!r} expected)")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise EvidenceFormatError(f"{where}: the evidence version is missing or not a number")
    if version < 1:
        raise EvidenceFormatError(f"{where}: evidence version {version} is not a version that was ever written")
    if version > EVIDENCE_VERSION:
        raise EvidenceFormatError(f"{where}: evidence version {version} was written by a newer omni-runbooks; "
                                  f"this one reads up to version {EVIDENCE_VERSION}: upgrade to replay it")
    sections = doc.get("sections")
    if not isinstance(sections, dict) or not all(isinstance(s, dict) for s in sections.values()):
        raise EvidenceFormatError(f"{where}: 'sections' must map each section to its items and errors")
    return {name: Evidence.from_dict(s) for name, s in sections.items()}
