"""The question page's static files: every field labelled, assets present, no HTML
insertion of server text in the script."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "services" / "web"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs, self.labels, self.assets = [], set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("input", "textarea", "select"):
            self.inputs.append(a.get("id"))
        if tag == "label":
            self.labels.add(a.get("for"))
        if tag in ("script", "link"):
            self.assets.append(a.get("src") or a.get("href"))


def test_every_field_has_a_label_and_every_asset_exists():
    page = _Page()
    page.feed((WEB / "index.html").read_text(encoding="utf-8"))
    assert page.inputs and all(i in page.labels for i in page.inputs)
    for asset in page.assets:
        assert asset.startswith("/ui/") and (WEB / asset.removeprefix("/ui/")).is_file()


def test_the_script_never_inserts_server_text_as_html():
    script = (WEB / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)
