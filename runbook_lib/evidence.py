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
