"""Every incident exported into tests/incidents/ is judged again by today's checks: the same
problems and the same root causes in the same order (see tests/incidents/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib import replay

FIXTURES = Path(__file__).resolve().parent / "incidents"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_todays_checks_still_name_the_incident(path):
    fixture = json.loads(path.read_text(encoding="utf-8"))
    assert replay.fixture_mismatches(fixture, path.name) == []
