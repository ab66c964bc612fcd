"""Shared fixtures: lab twins and helpers to bend their site files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def rewrite_site(site_file: Path, dest: Path, change) -> Path:
    """A copy of a site file with ``change(doc)`` applied (for deadline and bad-input tests)."""
    doc = yaml.safe_load(Path(site_file).read_text())
    change(doc)
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


@pytest.fixture(scope="session")
def healthy_twin():
    from runbook_lib.lab.twin import Twin

    with Twin() as twin:
        yield twin
