"""The provisioning notebook end to end on one scenario: what lands in the record besides the verdict
(the capacity plot as a PNG, the join table, the privileges). Every scenario's verdict is checked
by tests/test_runbooks.py."""

from __future__ import annotations

import base64
import json

import pytest

from runbook_lab.twin import Twin
from runbook_lib.runner import run_runbook

pytestmark = pytest.mark.runbook
PNG = b"\x89PNG\r\n\x1a\n"


def outputs(notebook: dict, mime: str) -> list:
    return [o["data"][mime] for cell in notebook["cells"] for o in cell.get("outputs", [])
            if mime in o.get("data", {})]


def test_node_full_record_shows_the_capacity_plot_and_the_join_chain(tmp_path):
    with Twin("node-full") as twin:
        res = run_runbook("provisioning", site_file=twin.site_file, outputs_dir=tmp_path)
    assert res.exit_code == 2
    assert {f.id for f in res.verdict.problems} == {"provisioning.insufficient_resources",
                                                    "provisioning.step_failed", "provisioning.vm_not_running"}
    notebook = json.loads(res.paths["notebook"].read_text())
    errors = [o for cell in notebook["cells"] for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    pngs = outputs(notebook, "image/png")
    assert len(pngs) == 1 and base64.b64decode(pngs[0]).startswith(PNG)
    html = "\n".join("".join(h) for h in outputs(notebook, "text/html"))
    assert "homelab-workers-v5kd8z" in html and "c2a7f4d1-3e58-4b9a-8f06-7d1e2b3c4a59" in html  # request -> uuid
    assert "VM.Allocate" in html and "short of" in html
    assert "data:image/png;base64," in res.paths["html"].read_text()
