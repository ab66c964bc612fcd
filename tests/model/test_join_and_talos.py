"""What "joined", "stuck" and a Talos port answer mean, as the model says it once for every section."""

from __future__ import annotations

import pytest

from runbook_lib.model.join import JoinRow, history, status_shows_joined, waiting_to_join
from runbook_lib.model.talos import judge_ports, served


def test_history_is_what_shows_a_machine_was_there():
    assert history() == []
    assert history(last_endpoint="192.0.2.5:51820") == ["its Link last spoke from 192.0.2.5:51820"]
    assert len(history("192.0.2.5:51820", "v1.9.3", "homelab")) == 3


@pytest.mark.parametrize("row, joined", [
    (JoinRow("r"), False),  # no machine at all
    (JoinRow("r", link_connected=False), False),  # a Link that never spoke
    (JoinRow("r", link_connected=False, last_endpoint="192.0.2.5:51820"), True),  # it spoke, then went quiet
    (JoinRow("r", machine_connected=False, talos_version="v1.9.3"), True),
    (JoinRow("r", machine_connected=False, cluster="homelab"), True),
    (JoinRow("r", machine_connected=True), True),
])
def test_joined_needs_evidence_and_never_needs_its_absence(row, joined):
    assert row.joined is joined
    assert waiting_to_join(row) is (not joined)


def test_a_request_being_torn_down_waits_for_nothing():
    assert not waiting_to_join(JoinRow("r", phase="tearingDown"))


def test_a_machine_status_alone_tells_the_same():
    assert not status_shows_joined(None) and not status_shows_joined({"connected": False})
    assert status_shows_joined({"connected": False, "talosversion": "v1.9.3"})
    assert status_shows_joined({"connected": True})


def test_each_role_is_judged_on_the_ports_it_serves():
    assert served("controlplane") == (50000, 50001) and served("worker") == (50000,) == served("")
    worker = judge_ports("worker", {"50000": "ok", "50001": "refused"})
    assert worker.reachable and worker.not_served == {50001: "refused"}
    cp = judge_ports("controlplane", {50000: "ok", 50001: "refused"})
    assert not cp.reachable and cp.blocked == {50001: "refused"} and "trustd" in cp.describe()
    gone = judge_ports("worker", {"50000": "unreachable", "50001": "unreachable"})
    assert gone.nobody_there and not judge_ports("worker", {"50000": "timeout"}).nobody_there
