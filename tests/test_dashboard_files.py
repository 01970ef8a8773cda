"""The dashboard's static files hang together without a build step: every file the page loads exists, every
ES-module import resolves, and the vendored chart library is the version its README names, with its licence."""
from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parent.parent / "web"


def test_every_file_the_page_loads_exists():
    html = (WEB / "index.html").read_text()
    linked = re.findall(r'(?:src|href)="/web/([^"]+)"', html)
    assert {"app.js", "app.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"} <= set(linked)
    for path in linked:
        assert (WEB / path).is_file(), path


def test_every_module_import_resolves():
    for script in WEB.glob("*.js"):
        for target in re.findall(r'^import [^;]*? from "(\./[^"]+)";', script.read_text(), flags=re.M | re.S):
            assert (WEB / target).is_file(), f"{script.name} imports {target}"


def test_vendored_chart_library_matches_its_readme_and_licence():
    readme = (WEB / "vendor" / "README.md").read_text()
    version = re.search(r"uPlot \(.*?\) \| (\d+\.\d+\.\d+) \| MIT", readme).group(1)
    header = (WEB / "vendor" / "uPlot.iife.min.js").read_text()[:200]
    assert f"(v{version})" in header
    assert "MIT License" in (WEB / "vendor" / "uPlot.LICENSE").read_text()


def test_api_data_is_never_written_as_markup():
    # Every view builds elements with ui.h() (text nodes): no innerHTML/outerHTML/insertAdjacentHTML anywhere.
    for script in WEB.glob("*.js"):
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script.read_text()), script.name
