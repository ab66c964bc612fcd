"""The cause catalog (``catalog.yaml`` beside this module): every finding id, as data.

The list of sections, each section's ids, the runbook pages' tables, scenario validation, the
causal links between findings and each section's symptoms (what an operator sees, and the
findings that answer it) all come from here; the checks register one function per id and a test
holds the two together. ``python -m runbook_lib.catalog`` writes the tables into the runbook
pages and the symptoms into the notebooks' first cells; tests check both are current.
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
class Symptom:
    """What an operator sees, in the catalog's words, and the findings that answer it."""

    section: str
    text: str
    findings: tuple[str, ...]  # ids of the section itself
    elsewhere: tuple[str, ...] = ()  # ids of other sections that answer it too

    @property
    def answers(self) -> tuple[str, ...]:
        return self.findings + self.elsewhere


@dataclass(frozen=True)
class Catalog:
    layers: tuple[str, ...]
    guide: dict[str, str]  # section -> the guide's heading
    causes: dict[str, Cause]  # id -> cause, in catalog order
    symptoms: dict[str, tuple[Symptom, ...]] = field(default_factory=dict)  # section -> its symptoms

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
    symptoms = {section: tuple(_symptom(section, entry, causes) for entry in body.get("symptoms") or ())
                for section, body in doc["sections"].items()}
    return Catalog(layers, guide, causes, symptoms)


SYMPTOM_KEYS = ("symptom", "findings", "elsewhere")


def _symptom(section: str, entry: dict, causes: dict[str, Cause]) -> Symptom:
    """One symptom, checked: its ids exist, ``findings`` are the section's own, ``elsewhere`` another's."""
    text = str(entry.get("symptom") or "").strip()
    where = f"symptom {text!r} of section {section}" if text else f"a symptom of section {section}"
    if not text:
        raise CatalogError(f"{where} has no text ('symptom:')")
    extra = sorted(set(entry) - set(SYMPTOM_KEYS))
    if extra:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(extra)} (a symptom has {', '.join(SYMPTOM_KEYS)})")
    findings, elsewhere = tuple(entry.get("findings") or ()), tuple(entry.get("elsewhere") or ())
    if not findings + elsewhere:
        raise CatalogError(f"{where} names no finding that answers it")
    for fid in findings + elsewhere:
        if fid not in causes:
            raise CatalogError(f"{where} names unknown id {fid}")
    for fid in findings:
        if causes[fid].section != section:
            raise CatalogError(f"{where}: {fid} belongs to section {causes[fid].section}; "
                               "list another section's ids under 'elsewhere'")
    for fid in elsewhere:
        if causes[fid].section == section:
            raise CatalogError(f"{where}: {fid} is this section's own; list it under 'findings'")
    return Symptom(section, text, findings, elsewhere)


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


# --- the symptoms: in the runbook pages and the notebooks' first cells -----------------------------

NOTEBOOKS = PAGES.parent.parent / "notebooks"
SYMPTOMS_BEGIN = "<!-- symptoms:begin (written by `python -m runbook_lib.catalog`) -->"
SYMPTOMS_END = "<!-- symptoms:end -->"
TRIAGE = "triage"  # the runbook that runs every section: its first cell lists every section's symptoms


def _ids(ids: tuple[str, ...]) -> str:
    return ", ".join(f"`{i}`" for i in ids)


def symptom_table(section: str) -> str:
    """The section's symptoms as a Markdown table: each with the findings that answer it (other
    sections' with their runbook)."""
    rows = ["| symptom | the findings that answer it |", "|---|---|"]
    for s in load().symptoms.get(section, ()):
        answers = [_ids(s.findings)] if s.findings else []
        answers += [f"`{i}` (runbook {load()[i].section})" for i in s.elsewhere]
        rows.append(f"| {s.text} | {', '.join(answers)} |")
    return "\n".join(rows)


def symptom_overview() -> str:
    """Every section's symptoms, one row per runbook (what the triage answers)."""
    rows = ["| runbook | symptoms it answers |", "|---|---|"]
    rows += [f"| {section} | {'<br>'.join(s.text for s in symptoms)} |"
             for section, symptoms in load().symptoms.items() if symptoms]
    return "\n".join(rows)


def symptoms_block(name: str, *, heading: str = "") -> str:
    """The generated block: a section's symptom table, or for the triage every section's."""
    body = symptom_overview() if name == TRIAGE else symptom_table(name)
    return f"{SYMPTOMS_BEGIN}\n{heading + chr(10) + chr(10) if heading else ''}{body}\n{SYMPTOMS_END}"


def page_symptoms_block(section: str) -> str:
    return symptoms_block(section, heading="## Symptoms, and the findings that answer them")


def _with_block(text: str, block: str, begin: str, end: str, insert_at: int) -> str:
    """``text`` with the block between ``begin`` and ``end`` replaced, or inserted at ``insert_at``."""
    if begin in text:
        return text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    return text[:insert_at].rstrip() + "\n\n" + block + "\n\n" + text[insert_at:].lstrip()


def _before_first_heading(text: str) -> int:
    at = text.find("\n## ")
    return len(text) if at < 0 else at + 1


def _after_first_paragraph(text: str) -> int:
    at = text.find("\n\n")
    return len(text) if at < 0 else at


def with_symptoms(name: str, first_cell: str) -> str:
    """A notebook's first (markdown) cell with its symptoms block current."""
    return _with_block(first_cell, symptoms_block(name), SYMPTOMS_BEGIN, SYMPTOMS_END,
                       _after_first_paragraph(first_cell)).rstrip()


def write_pages(pages: Path = PAGES) -> list[Path]:
    """Put (or refresh) each section's symptoms before the first heading of its runbook page, and
    its findings table at the end."""
    written = []
    for section in load().sections:
        page = pages / f"{section}.md"
        if not page.is_file():
            continue
        text = page.read_text(encoding="utf-8")
        if load().symptoms.get(section):
            text = _with_block(text, page_symptoms_block(section), SYMPTOMS_BEGIN, SYMPTOMS_END,
                               _before_first_heading(text))
        if BEGIN in text:
            text = text[: text.index(BEGIN)].rstrip() + "\n\n" + page_block(section) + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n" + page_block(section) + "\n"
        page.write_text(text, encoding="utf-8")
        written.append(page)
    return written


def write_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """Refresh the symptoms block in the first cell of each section's notebook and the triage's."""
    import nbformat

    written = []
    for name in (*load().sections, TRIAGE):
        path = folder / f"{name}.ipynb"
        if not path.is_file():
            continue
        nb = nbformat.read(path, as_version=4)
        fresh = with_symptoms(name, nb.cells[0].source)
        if fresh != nb.cells[0].source:
            nb.cells[0].source = fresh
            nbformat.write(nb, path)
            written.append(path)
    return written


if __name__ == "__main__":
    for path in write_pages() + write_notebooks():
        print(f"wrote {path.name}")
