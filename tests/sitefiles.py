"""Helpers for tests that bend a lab twin's site file."""

from __future__ import annotations

from pathlib import Path

import yaml


def rewrite_site(site_file: Path, dest: Path, change) -> Path:
    """A copy of a site file with ``change(doc)`` applied (for deadline and bad-input tests)."""
    doc = yaml.safe_load(Path(site_file).read_text())
    change(doc)
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest
