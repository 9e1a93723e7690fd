"""/docs works on a site network without Internet: Swagger UI's files come from minerd."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from ops_site import OpsSite, ServedSite
from servers import free_port
from test_ops_status_page import run_chromium


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedSite]:
    site = OpsSite(tmp_path / "minerd.sqlite")
    with ServedSite(site, free_port()) as srv:
        yield srv
    site.close()


def test_docs_reference_no_other_host_and_their_assets_answer(served: ServedSite) -> None:
    page = httpx.get(served.url + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(refs) == 3, refs  # the script, the stylesheet, the icon
    assert not re.search(r"https?://|//[a-z]", page.text), "no other host"
    kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for ref in refs:
        assert ref.startswith("/static/swagger-ui/")
        r = httpx.get(served.url + ref)
        assert r.status_code == 200, ref
        assert r.headers["content-type"].startswith(kinds[Path(ref).suffix]), ref
        assert len(r.content) > 500
    assert httpx.get(served.url + "/static/swagger-ui/index.html").status_code == 404
    assert httpx.get(served.url + "/static/swagger-ui/..%2Findex.html").status_code == 404


def test_swagger_ui_renders_the_operations_in_chromium(served: ServedSite, tmp_path: Path) -> None:
    dom = run_chromium(tmp_path, served.url + "/docs", "--dump-dom")
    # Swagger UI ran (from the local bundle) and listed the API's operations
    assert 'class="swagger-ui"' in dom
    assert "/api/v1/site" in dom and "/api/v1/quotas" in dom
