"""The kernel's private directory stays short enough for its Unix sockets, wherever $TMPDIR is."""

from __future__ import annotations

import shutil

from runbook_lib import kernel_session


def test_a_deep_tmpdir_and_state_dir_fall_back_to_a_short_directory(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr("tempfile.tempdir", str(deep))
    monkeypatch.setenv("RUNBOOK_HOME", str(deep / "home"))
    work = kernel_session.private_tmpdir(tmp_path / "outputs")
    try:
        assert len(str(work)) <= kernel_session._MAX_SOCKET_PREFIX - 16
        assert not str(work).startswith(str(deep)) and (work.stat().st_mode & 0o777) == 0o700
    finally:
        shutil.rmtree(work)


def test_a_short_tmpdir_is_used_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", "/tmp")
    work = kernel_session.private_tmpdir(tmp_path / "outputs")
    try:
        assert work.parent == kernel_session.Path("/tmp") and work.name.startswith("runbook-")
    finally:
        shutil.rmtree(work)
