"""The report in a real browser: headless Chromium loads it and every image decodes.

Skipped when no Chromium is installed (Debian: `apt-get install chromium`). The screenshot is
kept under the test's tmp_path as an artifact; its path is printed (`pytest -s` shows it).
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Sets a marker on <body> once the page has loaded: how many images there are and whether every
# one of them is complete with a natural width (i.e. decoded, not a broken-image icon).
_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.length > 0 && imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images", String(imgs.length));
  document.body.setAttribute("data-images-loaded", ok ? "yes" : "no");
});
</script>"""


def _browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _headless(browser: str, profile, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_every_image_loads_in_headless_chromium(tiny_report, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    html = tiny_report.read_text(encoding="utf-8")
    n_images = html.count("<img ")
    assert n_images >= 7
    # The check runs in a copy beside the report (same relative links), the marker script added.
    probe = tiny_report.with_name("report-check.html")
    probe.write_text(html.replace("</body>", _CHECK + "</body>"), encoding="utf-8")
    dom = _headless(browser, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom",
                    probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    assert f'data-images="{n_images}"' in body.group(0), body.group(0)
    assert 'data-images-loaded="yes"' in body.group(0), body.group(0)

    shot = tmp_path / "report-screenshot.png"
    snap = _headless(browser, tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,7000",
                     f"--screenshot={shot}", tiny_report.as_uri())
    assert snap.returncode == 0 and shot.is_file(), snap.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 7000)
        colours = im.convert("RGB").resize((128, 700)).getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the screenshot is (nearly) blank"
    print(f"\nreport screenshot: {shot}")
