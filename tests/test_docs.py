"""scripts/docs.sh builds the API reference, and the user guide's links hold."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_the_docs_script_builds_a_page_per_public_package(tmp_path: Path) -> None:
    out = tmp_path / "api"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "docs.sh"), str(out)],
        env={**os.environ, "H2RPC_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "index.html").is_file()
    pages = {
        "rpc.html": "Channel",
        "rpc/core.html": "open_connection",
        "rpc/client.html": "Channel",
        "rpc/server.html": "ServerContext",
        "rpc/status.html": "to_status",
    }
    for page, name in pages.items():
        text = (out / page).read_text()
        assert name in text, f"{page} does not document {name}"
    assert ":mod:" not in (out / "rpc.html").read_text()  # reST roles became links


def test_the_guide_links_to_pages_that_exist() -> None:
    pages = sorted(DOCS.glob("*.md"))
    assert (DOCS / "index.md") in pages
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} links to a missing {target}"
