"""Tests of runbook_lib.sources (a package, so its conftest does not shadow tests/conftest.py)."""
