"""The cause catalog (``catalog.yaml`` beside this module): every finding id, as data.

The list of sections, each section's ids, the runbook pages' tables, scenario validation and
the causal links between findings all come from here; the checks register one function per id
and a test holds the two together.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PATH = Path(__file__).with_name("catalog.yaml")


@dataclass(frozen=True)
class Cause:
    id: str
    section: str
    layer: str
    means: str
    decided_by: str
    explains: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Catalog:
    layers: tuple[str, ...]
    guide: dict[str, str]  # section -> the guide's heading
    causes: dict[str, Cause]  # id -> cause, in catalog order

    @property
    def sections(self) -> tuple[str, ...]:
        return tuple(self.guide)

    def ids(self, section: str | None = None) -> list[str]:
        return [c.id for c in self.causes.values() if section is None or c.section == section]

    def __contains__(self, finding_id: str) -> bool:
        return finding_id in self.causes

    def __getitem__(self, finding_id: str) -> Cause:
        return self.causes[finding_id]


class CatalogError(ValueError):
    """The catalog file breaks its own rules (an unknown id in ``explains``, a bad layer ...)."""


def parse(doc: dict) -> Catalog:
    layers = tuple(doc["layers"])
    guide, causes = {}, {}
    for section, body in doc["sections"].items():
        guide[section] = body["guide"]
        for fid, entry in (body.get("findings") or {}).items():
            if not fid.startswith(section + "."):
                raise CatalogError(f"{fid}: listed under section {section}")
            layer = entry.get("layer", body["layer"])
            if layer not in layers:
                raise CatalogError(f"{fid}: layer {layer!r} is not one of {', '.join(layers)}")
            causes[fid] = Cause(fid, section, layer, entry["means"], entry["decided_by"],
                                tuple(entry.get("explains") or ()))
    for cause in causes.values():
        unknown = [i for i in cause.explains if i not in causes]
        if unknown:
            raise CatalogError(f"{cause.id} explains unknown id(s) {', '.join(unknown)}")
    cycle = _cycle(causes)
    if cycle:
        raise CatalogError("the causal links go round in a circle: " + " -> ".join(cycle))
    return Catalog(layers, guide, causes)


def _cycle(causes: dict[str, Cause]) -> list[str]:
    """A loop in the ``explains`` links (empty: none): a cause cannot, through others, explain itself."""
    done: set[str] = set()

    def visit(fid: str, path: list[str]) -> list[str]:
        if fid in path:
            return path[path.index(fid):] + [fid]
        if fid in done:
            return []
        for nxt in causes[fid].explains:
            found = visit(nxt, path + [fid])
            if found:
                return found
        done.add(fid)
        return []

    for fid in causes:
        found = visit(fid, [])
        if found:
            return found
    return []


@functools.lru_cache(maxsize=1)
def load() -> Catalog:
    return parse(yaml.safe_load(PATH.read_text(encoding="utf-8")))


# --- the runbook pages' tables --------------------------------------------------------------------

PAGES = Path(__file__).resolve().parent.parent / "docs" / "runbooks"
BEGIN, END = "<!-- catalog:begin (written by `python -m runbook_lib.catalog`) -->", "<!-- catalog:end -->"


def table(section: str) -> str:
    """The section's findings as a Markdown table: id, what a problem means, what decides it, what it explains."""
    rows = ["| id | a `problem` means | decided by | can explain |", "|---|---|---|---|"]
    for fid in load().ids(section):
        c = load()[fid]
        explains = ", ".join(f"`{i}`" for i in c.explains) or "-"
        rows.append(f"| `{fid}` | {c.means} | {c.decided_by} | {explains} |")
    return "\n".join(rows)


def page_block(section: str) -> str:
    return f"{BEGIN}\n## The findings in the cause catalog\n\n{table(section)}\n{END}"


def write_pages(pages: Path = PAGES) -> list[Path]:
    """Put (or refresh) each section's table at the end of its runbook page."""
    written = []
    for section in load().sections:
        page = pages / f"{section}.md"
        if not page.is_file():
            continue
        text = page.read_text(encoding="utf-8")
        if BEGIN in text:
            text = text[: text.index(BEGIN)].rstrip() + "\n\n" + page_block(section) + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n" + page_block(section) + "\n"
        page.write_text(text, encoding="utf-8")
        written.append(page)
    return written


if __name__ == "__main__":
    for path in write_pages():
        print(f"wrote {path.name}")
