"""Nothing unsafe rendered: hostile model output is shown inert and readable, and nothing is
fetched while it is rendered (core.rendering -> SafeTextView -> the candidate cards)."""

from __future__ import annotations

import re
import socket
import time

import pytest
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QTextDocument
from PySide6.QtWidgets import QTextBrowser

from hitl_desktop.core import rendering
from hitl_desktop.core.types import Candidate
from hitl_desktop.qt.candidate_card import CandidateCard
from hitl_desktop.qt.markdown_view import SafeTextView

EVIL = "evil.example"

HOSTILE = {
    "script": "<script>alert('x')</script> after the script",
    "html-block": '<div style="background:url(http://evil.example/bg.png)">styled</div>\n\n<iframe src="http://evil.example/frame"></iframe>',
    "img-html": '<img src="http://evil.example/pixel.png" onerror="alert(1)">',
    "img-md": "![tracking pixel](http://evil.example/pixel.png)",
    "img-md-ref": "![x][p]\n\n[p]: https://evil.example/ref.png",
    "img-md-title": '![a](https://evil.example/t.png "title")',
    "link-js": "[click me](javascript:alert(1))",
    "link-http": "[the docs](https://evil.example/phish)",
    "autolink": "<https://evil.example/auto>",
    "data-uri": "![d](data:image/png;base64,iVBORw0KGgo=)",
    "file-uri": "![local](file:///etc/passwd)",
    "svg": "<svg onload=alert(1)><image href='http://evil.example/s.png'/></svg>",
    "style": "<style>body{background:url('http://evil.example/css.png')}</style>",
    "meta-refresh": '<meta http-equiv="refresh" content="0;url=http://evil.example">',
    "base": '<base href="http://evil.example/">![rel](x.png)',
    "link-tag": '<link rel="stylesheet" href="http://evil.example/s.css">',
    "object": '<object data="http://evil.example/o.swf"></object><embed src="http://evil.example/e">',
    "form": '<form action="http://evil.example"><input name=q></form>',
    "entities": "&lt;script&gt; &#x3C;img src=http://evil.example/ent.png&#x3E; &amp;",
    "code-fence": '```html\n<img src="http://evil.example/code.png">\n```',
    "inline-code": "`<img src=http://evil.example/i.png>`",
    "table": "| a | b |\n|:--|--:|\n| <img src=http://evil.example/t.png> | [x](http://evil.example) |",
    "nested": "**<b>bold</b>** _<i onclick=x>i</i>_",
    "math": "$\\frac{<img src=http://evil.example/m.png>}{2}$ and $$\\text{<script>}$$",
    "bidi": "price: \u202e0001$\u202c ok \u2066isolated\u2069 \u200fmark",
    "controls": "bell\x07 nul\x00 esc\x1b[31mred\x1b[0m del\x7f c1\x85\x9b cr\rlf",
    "invisible": "pass\u200bword \ufeffbom \U000e0041\U000e0042 tags \u00adshy",
}

ALLOWED_TAGS = {
    "p", "span", "pre", "code", "em", "strong", "ul", "ol", "li", "table", "thead", "tbody",
    "tr", "th", "td", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "br", "div", "s", "del",
}
ALLOWED_ATTRS = {"class", "border", "cellspacing", "cellpadding", "start", "style"}
TAG_RE = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9]*)([^>]*)>")
ATTR_RE = re.compile(r'([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*("[^"]*"|\'[^\']*\'|[^\s>]+)')


def assert_inert(html: str) -> None:
    """Only plain formatting tags with harmless attributes; every URL is text, not an attribute."""
    for m in TAG_RE.finditer(html):
        tag = m.group(2).lower()
        assert tag in ALLOWED_TAGS, f"active tag <{tag}> in {html[:300]!r}"
        for name, value in ATTR_RE.findall(m.group(3)):
            assert name.lower() in ALLOWED_ATTRS, f"attribute {name}= in <{tag}>"
            if name.lower() == "style":
                assert re.fullmatch(r"[\"']?text-align:\s*(left|right|center)[\"']?", value), value
    assert "\u202e" not in html and "\x00" not in html and "\x1b" not in html
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", html)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_rendered_html_is_inert(name):
    text = HOSTILE[name]
    for html in (rendering.render_markdown(text), rendering.render_plain(text),
                 rendering.diff_html(text, text + " <script>x</script>")):
        assert_inert(html)


def test_hostile_text_stays_readable():
    r = rendering.render_markdown
    assert "&lt;script&gt;alert" in r(HOSTILE["script"])  # shown as text, not run, not dropped
    img = r(HOSTILE["img-md"])
    assert "[image: tracking pixel]" in img and "http://evil.example/pixel.png" in img
    link = r(HOSTILE["link-js"])
    assert "click me" in link and "javascript:alert(1)" in link  # the address is visible as text
    assert "⟦RLO⟧" in r(HOSTILE["bidi"]) and "⟦PDF⟧" in r(HOSTILE["bidi"])
    controls = r(HOSTILE["controls"])
    assert "␇" in controls and "␀" in controls and "␛" in controls and "⟦U+0085⟧" in controls
    assert "⟦ZWSP⟧" in r(HOSTILE["invisible"]) and "⟦U+E0041⟧" in r(HOSTILE["invisible"])


def test_an_enormous_line_renders_fast_and_is_cut_visibly():
    line = "A" * 1_000_000
    t0 = time.perf_counter()
    html = rendering.render_markdown(line)
    assert time.perf_counter() - t0 < 2.0
    assert "1,000,000" in html and len(html) < 300_000
    assert_inert(html)
    words = ("lorem <b>ipsum</b> " * 60_000)[:1_000_000]
    t0 = time.perf_counter()
    assert_inert(rendering.render_markdown(words))
    assert time.perf_counter() - t0 < 3.0


@pytest.fixture
def no_network(monkeypatch):
    """Record every resource Qt asks for; any Python socket use fails the test."""
    asked: list[str] = []

    def refuse(*args, **kwargs):
        raise AssertionError(f"network use while rendering: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    for cls in (SafeTextView, QTextBrowser, QTextDocument):
        original = cls.loadResource

        def recording(self, type_, name, _original=original):
            asked.append(name.toString() if isinstance(name, QUrl) else str(name))
            return _original(self, type_, name)

        monkeypatch.setattr(cls, "loadResource", recording)

    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or False)
    yield asked, opened


def active_markup(qt_html: str) -> list[str]:
    """Tags or link/source attributes in the HTML Qt holds (escaped text does not count)."""
    body = qt_html.split("<body", 1)[1]
    found = []
    for m in TAG_RE.finditer(body):
        tag = m.group(2).lower()
        if tag in ("img", "a", "script", "iframe", "object", "embed", "link", "style", "meta"):
            found.append(f"<{tag}>")
        found += [f"{tag} {n}=" for n, _ in ATTR_RE.findall(m.group(3)) if n.lower() in ("href", "src")]
    return found


def remote(urls: list[str]) -> list[str]:
    return [u for u in urls if re.match(r"(?i)^(https?|ftp|file|data):|^//", u) or EVIL in u]


def test_the_view_renders_hostile_text_without_fetching_anything(qtbot, no_network):
    asked, opened = no_network
    view = SafeTextView()
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    for name, text in HOSTILE.items():
        view.set_markdown(text)
        qtbot.wait(5)
        assert active_markup(view.toHtml()) == [], name
        assert view.toPlainText().strip(), f"{name}: nothing readable shown"
    # click all over it: nothing opens
    for x in range(10, 490, 60):
        for y in range(10, 390, 60):
            qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, y))
    assert remote(asked) == [] and remote(view.resource_requests) == []
    assert opened == []


def test_candidate_cards_show_hostile_candidates_inert(qtbot, no_network):
    asked, opened = no_network
    card = CandidateCard(0)
    qtbot.addWidget(card)
    card.resize(600, 500)
    card.show()
    qtbot.waitExposed(card)
    everything = "\n\n".join(HOSTILE.values())
    megabyte_of_words = ("lorem <b>ipsum</b> dolor " * 50_000)[:1_000_000]
    for text in (everything, megabyte_of_words, "x\u202eevil" * 1000):
        t0 = time.perf_counter()
        card.set_candidate(Candidate(prompt_id="p", text=text, model="m"))
        qtbot.wait(10)
        assert time.perf_counter() - t0 < 5.0
        assert active_markup(card.view.toHtml()) == []
        assert "\u202e" not in card.view.toPlainText()
    card.set_streaming_text(HOSTILE["img-md"] + " and more")
    qtbot.wait(10)
    assert "[image: tracking pixel]" in card.view.toPlainText()
    assert card.view.horizontalScrollBar().maximum() == 0, "an enormous line wraps"
    assert remote(asked) == [] and remote(card.view.resource_requests) == []
    assert opened == []


def test_an_enormous_unbroken_line_does_not_freeze_the_view(qtbot):
    """1 MB in one token (a base64 blob, a run of one character): shown cut and wrapped, fast.

    (Qt lays out one unbroken 200,000-character word with WrapAnywhere in quadratic time:
    about 7 s here; the renderer has to break such runs or cut them shorter.)"""
    view = SafeTextView()
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    qtbot.waitExposed(view)
    t0 = time.perf_counter()
    view.set_markdown("B" * 1_000_000)
    qtbot.wait(1)
    elapsed = time.perf_counter() - t0
    assert "1,000,000" in view.toPlainText()
    assert view.horizontalScrollBar().maximum() == 0
    assert elapsed < 2.0, f"the GUI froze for {elapsed:.1f} s on a 1 MB unbroken line"


def test_even_injected_html_loads_nothing(qtbot, no_network):
    """Defence in depth: HTML that asks for remote images gets nothing from the view."""
    asked, _ = no_network
    view = SafeTextView()
    qtbot.addWidget(view)
    view.set_safe_html(
        '<img src="http://evil.example/x.png"><img src="https://evil.example/y.png">'
        '<a href="http://evil.example">x</a><link rel="stylesheet" href="http://evil.example/s.css">'
    )
    view.resize(300, 200)
    view.show()
    qtbot.waitExposed(view)
    qtbot.wait(10)
    # Qt may ASK for the images (recorded), but loadResource answers None: nothing is fetched
    # (the sockets above would have failed the test) and the view never follows a link.
    for url in list(view.resource_requests):
        assert view.loadResource(2, QUrl(url)) is None
    assert not view.openLinks() and not view.openExternalLinks()
    before = view.toHtml()
    view.setSource(QUrl("http://evil.example/page"))
    assert view.toHtml() == before
    assert all(u == "" or EVIL in u for u in asked)
