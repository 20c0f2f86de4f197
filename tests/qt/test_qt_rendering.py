"""Untrusted model text renders inert: no raw HTML, no links, nothing loaded, bidi visible."""

from __future__ import annotations

import re

from hitl_desktop.core import rendering
from hitl_desktop.qt.markdown_view import SafeTextView

HOSTILE = (
    "Hello <script>alert('x')</script> <img src=http://evil.example/pixel.png> "
    "[click me](http://evil.example/phish) ![logo](http://evil.example/logo.png) "
    "<a href='file:///etc/passwd'>local</a> <http://evil.example/auto> "
    "admin\u202eexe.txt \u2066isolate\u2069 bell\x07 nul\x00 zero\u200bwidth tag\U000e0041"
)


ACTIVE_TAG = re.compile(r"<\s*(a|img|script|iframe|object|embed|link|style)\b", re.IGNORECASE)


def test_render_markdown_is_inert():
    out = rendering.render_markdown(HOSTILE)
    assert not ACTIVE_TAG.search(out)
    assert not re.search(r"<[^>]*\s(href|src)\s*=", out)  # no tag carries an address
    assert "&lt;script&gt;" in out
    assert "⟨http://evil.example/phish⟩" in out  # the address is shown, as text
    assert "[image: logo]" in out
    assert "\u202e" not in out and "⟦RLO⟧" in out
    assert "\u2066" not in out and "⟦LRI⟧" in out and "⟦PDI⟧" in out
    assert "\x07" not in out and "␇" in out and "␀" in out
    assert "⟦ZWSP⟧" in out and "⟦U+E0041⟧" in out


def test_markdown_features_survive():
    text = "# Title\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nx = '<b>'\n```\n\n$\\frac{a}{b} \\le \\alpha^2$"
    out = rendering.render_markdown(text)
    assert "<h1>Title</h1>" in out and "<li>one</li>" in out
    assert "<table" in out and "<td>1</td>" in out
    assert '<pre class="code">x = &#x27;&lt;b&gt;&#x27;' in out or "&lt;b&gt;" in out
    assert "a/b ≤ α²" in out
    assert "costs $5 and $10" in rendering.render_markdown("costs $5 and $10")


def test_neutralize_and_plain():
    assert rendering.neutralize("a\r\nb\u2028c") == "a\nb\nc"
    assert rendering.has_suspicious_characters("x\u202ey") and not rendering.has_suspicious_characters("plain\ttext\n")
    assert "&lt;b&gt;" in rendering.render_plain("<b>")


def test_enormous_text_is_cut_visibly():
    out = rendering.render_markdown("x" * (rendering.MAX_RENDER_CHARS + 10))
    assert "shown: the first" in out


def test_diff_html_marks_changes():
    html = rendering.diff_html("The dose is 5 mg daily.", "The dose is 10 mg twice daily.<script>")
    assert '<span class="del">5</span>' in html and '<span class="ins">10</span>' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert rendering.diff_stats("a b c", "a x c d") == (2, 1)


def test_view_loads_nothing_and_opens_nothing(qtbot):
    view = SafeTextView()
    qtbot.addWidget(view)
    view.set_markdown(HOSTILE)
    html = view.toHtml().split("<body", 1)[1]  # Qt's own <head> has a <style>
    assert not ACTIVE_TAG.search(html)
    assert not re.search(r"<[^>]*\s(href|src)\s*=", html)
    assert "⟦RLO⟧" in view.toPlainText()
    assert view.resource_requests == []
    assert not view.openLinks() and not view.openExternalLinks()
    # even HTML that asks for resources gets nothing (defence in depth)
    view.set_safe_html("<img src='http://evil.example/x.png'><a href='http://evil.example'>x</a>")
    assert view.loadResource(2, view.source()) is None
    view.setSource(view.source())  # ignored
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    # asked (by our direct call and by the <img>), never fetched: loadResource returned None
    assert set(view.resource_requests) <= {"", "http://evil.example/x.png"}


def test_long_lines_wrap(qtbot):
    view = SafeTextView()
    qtbot.addWidget(view)
    view.resize(300, 200)
    view.set_markdown("y" * 5000 + "\n\n```\n" + "z" * 5000 + "\n```")
    view.show()
    qtbot.waitExposed(view)
    assert view.horizontalScrollBar().maximum() == 0
