"""A record's HTML, as a person opens it: headless Chromium, a screenshot, the verdict on top.

One real record (the health runbook against a twin whose Tailscale sidecar exited) is rendered
again with `runbook records html` and opened in Debian's chromium. The screenshot of the first
screen must show the verdict table: rows in the problem colour and in the ok colour, above the
fold, and the notebook's own first heading must come after the table.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runbook_lib import records
from runbook_lib.cli import main
from runbook_lib.lab.twin import Twin
from runbook_lib.runner import run_runbook

pytestmark = pytest.mark.runbook
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 900


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    with Twin("health-omni-services") as twin:
        result = run_runbook("health", site_file=twin.site_file, outputs_dir=root / "outputs")
    assert result.exit_code == 2
    return result, root


@pytest.fixture(scope="module")
def page(record, tmp_path_factory):
    result, root = record
    target = root / "record.html"
    assert main(["records", "html", result.verdict.run_id, "--outputs", str(root / "outputs"),
                 "-o", str(target)]) == 0
    return target


def screenshot(html: Path, dest: Path) -> Image.Image:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (.ci/run installs it)")
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={dest.parent / 'chromium-profile'}", f"--window-size={WIDTH},{HEIGHT}",
                           f"--screenshot={dest}", html.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert dest.is_file(), proc.stderr[-2000:]
    return Image.open(dest).convert("RGB")


def rows_with(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 6) -> list[int]:
    """The y coordinates of pixel rows where at least a fifth of the width has ``colour``."""
    pixels = np.asarray(image, dtype=np.int16)
    matches = (np.abs(pixels - np.array(colour, dtype=np.int16)) <= tolerance).all(axis=2)
    return [int(y) for y in np.nonzero(matches.sum(axis=1) > image.width // 5)[0]]


def test_the_verdict_table_is_visible_on_the_first_screen(page, tmp_path):
    image = screenshot(page, tmp_path / "shot.png")
    assert image.size == (WIDTH, HEIGHT)
    problem_rows = rows_with(image, rgb(records.STATUS_COLOURS["problem"]))
    ok_rows = rows_with(image, rgb(records.STATUS_COLOURS["ok"]))
    assert problem_rows, "no problem-coloured table row on the first screen"
    assert len(ok_rows) > 6 * 15, "the six ok rows are not all on the first screen"
    assert max(problem_rows) < min(ok_rows)  # most severe first
    assert min(problem_rows) < HEIGHT // 3  # near the top: the verdict comes before the evidence


def test_the_page_puts_the_verdict_first_and_hides_the_code(page):
    html = page.read_text()
    assert html.index("verdict-table") < html.index("Health checks")
    assert "health.omni_services" in html[:html.index("Health checks")]
    assert "from runbook_lib" not in html and "gather.gather(" not in html  # code inputs hidden


def test_the_html_written_with_the_record_is_the_same_rendering(record, page):
    result, _ = record
    written = result.paths["html"].read_text()
    assert written.index("verdict-table") < written.index("Health checks")
    assert "omni-tailscale not running" in written


def test_a_section_of_an_incident_can_be_rendered(record, tmp_path, capsys):
    result, root = record
    code = main(["records", "html", "last", "--outputs", str(root / "outputs"), "--section", "nosuch",
                 "-o", str(tmp_path / "x.html")])
    assert code == 3 and "no nosuch notebook" in capsys.readouterr().err
