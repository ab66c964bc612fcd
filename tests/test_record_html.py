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

from runbook_lab.twin import Twin
from runbook_lib import records
from runbook_lib.cli import main
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


REMOTE_LOADS = [  # what makes a browser fetch something: scripts, stylesheets, CSS imports and urls, frames
    r"<script[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//",
    r"<link[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//",
    r"<(?:img|iframe|source|video|audio)[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//",
    r"@import\s+(?:url\()?\s*[\"']?(?:https?:)?//",
    r"url\(\s*[\"']?(?:https?:)?//",
]


@pytest.mark.parametrize("which", ["written with the record", "rendered again"])
def test_the_record_names_no_remote_url_to_load(record, page, which):
    import re

    html = (record[0].paths["html"] if which == "written with the record" else page).read_text()
    found = [m.group(0) for pattern in REMOTE_LOADS for m in re.finditer(pattern, html, re.IGNORECASE)]
    assert found == []
    assert "require.js" not in html and "MathJax.js" not in html and "mathjax" not in html.lower()


class NetworkTrap:
    """A local proxy that answers nothing: every request the browser tries is recorded, none leaves."""

    def __init__(self):
        import socket
        import threading

        self.requests: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import socket

        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace"))
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.sock.close()


def render_offline(html: Path, profile: Path) -> tuple[str, list[str]]:
    """The page's DOM after Chromium loaded it with no network (every connection goes to a trap);
    returns the DOM and the requests the page made."""
    import re

    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (.ci/run installs it)")
    trap = NetworkTrap()
    try:
        proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                               f"--proxy-server=http://127.0.0.1:{trap.port}",
                               "--proxy-bypass-list=<-loopback>", "--disable-background-networking",
                               "--virtual-time-budget=3000", "--dump-dom", html.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        trap.close()
    own = re.compile(r"^\S+ (?:https?://)?(?:(?:clients\d*|accounts|www)\.google\.com|[\w-]+\.googleapis\.com"
                     r"|[\w.-]+\.gvt1\.com)[:/]")
    return proc.stdout, [r for r in trap.requests if not own.match(r)]  # Chromium's own calls home: not the page's


def test_the_record_renders_offline_with_its_verdict_rows(page, tmp_path):
    import re

    dom, tried = render_offline(page, tmp_path / "profile")
    rows = re.findall(r"<tr class=\"finding-(\w+)\"", dom)
    assert rows and rows[0] == "problem" and rows.count("ok") >= 6
    assert tried == []  # nothing was fetched, because nothing is loaded from anywhere


def test_the_offline_check_would_see_a_page_that_loads_from_a_cdn(tmp_path):
    page = tmp_path / "cdn.html"
    page.write_text("<html><head><script src='https://cdn.example.org/require.js'></script></head>"
                    "<body><table><tr class='finding-ok'><td>ok</td></tr></table></body></html>")
    _, tried = render_offline(page, tmp_path / "profile")
    assert any("cdn.example.org" in t for t in tried)
