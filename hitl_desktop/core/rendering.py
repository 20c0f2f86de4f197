"""Model text -> safe HTML for display; a correction's diff against its original.

Pure Python (no Qt). A model's answer is untrusted text: it may contain raw HTML, links,
image references, control characters or bidirectional overrides meant to make the text read
differently from what it is. ``render_markdown`` turns it into HTML that

* has no raw HTML (markdown-it with ``html`` off escapes it),
* has no ``<a>`` and no ``<img>``: links are shown as their text followed by the address
  as plain text, images as ``[image: alt]`` with the address as text, so nothing is
  clickable and nothing is loaded,
* shows control characters, bidi overrides/isolates and invisible characters as visible
  markers (``⟦RLO⟧``, ``␀`` ...) instead of letting them act,
* breaks enormous unbroken runs (a base64 blob, one character repeated) with invisible
  break opportunities so the view lays them out fast,
* makes TeX math readable (``$\\frac{a}{b} \\le \\alpha$`` -> ``(a)/(b) ≤ α``),
* keeps code blocks, lists and tables, with wrapping for enormous lines
  (``white-space: pre-wrap``; the view also wraps anywhere).

The view must still refuse to open links or load resources (defence in depth); see
``hitl_desktop.qt.markdown_view``.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported on first render: markdown-it costs ~0.1 s before the window shows
    from markdown_it import MarkdownIt

#: Longest text rendered; longer text is cut with a visible note (keeps the GUI responsive).
MAX_RENDER_CHARS = 200_000
#: Runs of non-space characters longer than this get invisible break opportunities (U+200B)
#: every BREAK_EVERY characters: Qt lays out one enormous unbroken word in quadratic time.
LONG_RUN = 160
BREAK_EVERY = 80
_LONG_RUN_RE = re.compile(r"\S{" + str(LONG_RUN) + ",}")


def _break_long_runs(text: str) -> str:
    def cut(m: re.Match[str]) -> str:
        run = m.group(0)
        return "\u200b".join(run[i : i + BREAK_EVERY] for i in range(0, len(run), BREAK_EVERY))

    return _LONG_RUN_RE.sub(cut, text)

_BIDI_NAMES = {
    "\u202a": "LRE",
    "\u202b": "RLE",
    "\u202c": "PDF",
    "\u202d": "LRO",
    "\u202e": "RLO",
    "\u2066": "LRI",
    "\u2067": "RLI",
    "\u2068": "FSI",
    "\u2069": "PDI",
    "\u200e": "LRM",
    "\u200f": "RLM",
    "\u061c": "ALM",
}
_INVISIBLE_NAMES = {
    "\u200b": "ZWSP",
    "\u2060": "WJ",
    "\ufeff": "BOM",
    "\u00ad": "SHY",
    "\u180e": "MVS",
}
_MARKER_RE = re.compile(r"⟦([A-Z]{2,4}|U\+[0-9A-F]{4,6})⟧")


def _char_marker(ch: str) -> str | None:
    """The visible replacement for a dangerous or invisible character, None to keep it."""
    cp = ord(ch)
    if ch in ("\n", "\t"):
        return None
    if cp < 0x20:
        return chr(0x2400 + cp)  # control pictures: ␀ ␁ ... ␟
    if cp == 0x7F:
        return "␡"
    if 0x80 <= cp <= 0x9F:
        return f"⟦U+{cp:04X}⟧"
    name = _BIDI_NAMES.get(ch) or _INVISIBLE_NAMES.get(ch)
    if name:
        return f"⟦{name}⟧"
    if 0xE0000 <= cp <= 0xE007F:  # tag characters: invisible, used to hide instructions
        return f"⟦U+{cp:05X}⟧"
    return None


_SUSPECT_RE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e"
    "\u2060\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)


def neutralize(text: str) -> str:
    """Make control, bidi and invisible characters visible; normalise line breaks.

    ``\\r\\n`` and the Unicode line/paragraph separators become ``\\n``; every other control
    character (C0, DEL, C1), every bidi embedding/override/isolate/mark, and invisible
    characters (zero-width space, word joiner, BOM, soft hyphen, tag characters) become
    visible markers, so the text cannot reorder or hide itself.
    """
    text = text.replace("\r\n", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    return _SUSPECT_RE.sub(lambda m: _char_marker(m.group(0)) or m.group(0), text)


def has_suspicious_characters(text: str) -> bool:
    """True when the text holds characters ``neutralize`` would mark (bidi, controls...)."""
    return bool(_SUSPECT_RE.search(text.replace("\r\n", "\n")))


# -- TeX to readable Unicode ----------------------------------------------------------------

_TEX_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ",
    "tau": "τ", "upsilon": "υ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ",
    "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
    "times": "×", "cdot": "·", "div": "÷", "pm": "±", "mp": "∓", "le": "≤", "leq": "≤",
    "ge": "≥", "geq": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "equiv": "≡", "sim": "∼",
    "propto": "∝", "infty": "∞", "sum": "∑", "prod": "∏", "int": "∫", "oint": "∮",
    "partial": "∂", "nabla": "∇", "to": "→", "rightarrow": "→", "leftarrow": "←",
    "Rightarrow": "⇒", "Leftarrow": "⇐", "iff": "⇔", "Leftrightarrow": "⇔", "implies": "⇒",
    "mapsto": "↦", "in": "∈", "notin": "∉", "subset": "⊂", "subseteq": "⊆", "supset": "⊃",
    "cup": "∪", "cap": "∩", "emptyset": "∅", "forall": "∀", "exists": "∃", "neg": "¬",
    "land": "∧", "lor": "∨", "wedge": "∧", "vee": "∨", "ldots": "…", "cdots": "⋯",
    "dots": "…", "degree": "°", "circ": "∘", "langle": "⟨", "rangle": "⟩", "lfloor": "⌊",
    "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉", "hbar": "ℏ", "ell": "ℓ", "quad": "  ",
    "qquad": "    ", "log": "log", "ln": "ln", "exp": "exp", "sin": "sin", "cos": "cos",
    "tan": "tan", "lim": "lim", "max": "max", "min": "min", "det": "det", "mid": "∣",
    "perp": "⊥", "parallel": "∥", "angle": "∠", "triangle": "△", "star": "⋆",
}
_BLACKBOARD = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "P": "ℙ", "E": "𝔼"}
_SUPERSCRIPT = str.maketrans("0123456789+-=()ni", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ")
_SUBSCRIPT = str.maketrans("0123456789+-=()aeoxijkmnpst", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₒₓᵢⱼₖₘₙₚₛₜ")
_SUP_CHARS = set("0123456789+-=()ni")
_SUB_CHARS = set("0123456789+-=()aeoxijkmnpst")


def _group(s: str, i: int) -> tuple[str, int]:
    """The brace group or single character at s[i:], and the index after it."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] != "{":
        if s[i] == "\\":
            m = re.match(r"\\[A-Za-z]+", s[i:])
            if m:
                return m.group(0), i + len(m.group(0))
        return s[i], i + 1
    depth, j = 0, i
    while j < len(s):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
        j += 1
    return s[i + 1 :], len(s)


def _wrap(x: str) -> str:
    return x if len(x) <= 1 or re.fullmatch(r"[\w.]+", x) else f"({x})"


def tex_to_text(tex: str) -> str:
    """Readable Unicode for common TeX: Greek, operators, fractions, roots, scripts."""
    out: list[str] = []
    i, s = 0, tex
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            m = re.match(r"\\([A-Za-z]+)|\\(.)", s[i:])
            assert m is not None
            i += len(m.group(0))
            name = m.group(1)
            if name is None:  # \, \; \! \{ \} \\ ...
                sym = m.group(2)
                out.append({",": " ", ";": " ", ":": " ", "!": "", "\\": "\n"}.get(sym, sym))
            elif name in ("frac", "dfrac", "tfrac"):
                a, i = _group(s, i)
                b, i = _group(s, i)
                out.append(f"{_wrap(tex_to_text(a))}/{_wrap(tex_to_text(b))}")
            elif name == "sqrt":
                a, i = _group(s, i)
                out.append(f"√{_wrap(tex_to_text(a))}")
            elif name in ("mathbb", "mathbf", "mathrm", "mathit", "text", "textbf", "operatorname",
                          "mathcal", "boldsymbol", "textrm", "mbox"):
                a, i = _group(s, i)
                if name == "mathbb" and a in _BLACKBOARD:
                    out.append(_BLACKBOARD[a])
                else:
                    out.append(tex_to_text(a) if not name.startswith("text") else a)
            elif name in ("left", "right", "big", "Big", "bigl", "bigr", "displaystyle"):
                continue
            elif name in ("begin", "end"):
                _, i = _group(s, i)
            else:
                out.append(_TEX_SYMBOLS.get(name, "\\" + name))
        elif ch in "^_":
            a, i = _group(s, i + 1)
            a = tex_to_text(a)
            table, chars = (_SUPERSCRIPT, _SUP_CHARS) if ch == "^" else (_SUBSCRIPT, _SUB_CHARS)
            if a and set(a) <= chars:
                out.append(a.translate(table))
            else:
                out.append(ch + _wrap(a))
        elif ch in "{}":
            i += 1
        elif ch == "&":
            out.append(" ")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# -- markdown ---------------------------------------------------------------------------------


def _math_rule(state, silent: bool) -> bool:  # markdown-it inline rule
    src, pos = state.src, state.pos
    opener = None
    for o, c in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if src.startswith(o, pos):
            opener, closer = o, c
            break
    if opener is None:
        return False
    start = pos + len(opener)
    if opener == "$":
        # $x$ only when it cannot be money: no space just inside, no digit right after.
        if start >= len(src) or src[start] in " \t\n$":
            return False
        end = start
        while True:
            end = src.find("$", end)
            if end < 0:
                return False
            if src[end - 1] == "\\":
                end += 1
                continue
            break
        if src[end - 1] in " \t\n" or (end + 1 < len(src) and src[end + 1].isdigit()):
            return False
    else:
        end = src.find(closer, start)
        if end < 0:
            return False
    content = src[start:end]
    if not content.strip():
        return False
    if not silent:
        token = state.push("math_inline", "", 0)
        token.content = content
        token.markup = opener
    state.pos = end + len(closer)
    return True


def _render_math(self, tokens, idx, options, env) -> str:
    tok = tokens[idx]
    cls = "math math-display" if tok.markup in ("$$", "\\[") else "math"
    return f'<span class="{cls}">{html.escape(tex_to_text(tok.content))}</span>'


def _render_link_open(self, tokens, idx, options, env) -> str:
    env.setdefault("_hrefs", []).append(tokens[idx].attrGet("href") or "")
    return '<span class="link">'


def _render_link_close(self, tokens, idx, options, env) -> str:
    hrefs = env.get("_hrefs") or [""]
    href = hrefs.pop()
    if not href:
        return "</span>"
    return f'</span><span class="href"> ⟨{html.escape(str(href))}⟩</span>'


def _render_image(self, tokens, idx, options, env) -> str:
    tok = tokens[idx]
    alt = self.renderInlineAsText(tok.children or [], options, env)
    src = tok.attrGet("src") or ""
    return (
        f'<span class="image">[image: {html.escape(alt) or "no description"}]</span>'
        f'<span class="href"> ⟨{html.escape(str(src))}⟩</span>'
    )


def _render_fence(self, tokens, idx, options, env) -> str:
    tok = tokens[idx]
    lang = html.escape(tok.info.strip().split(" ")[0]) if tok.info else ""
    label = f'<div class="lang">{lang}</div>' if lang else ""
    return f'{label}<pre class="code">{html.escape(tok.content)}</pre>\n'


def _render_code_block(self, tokens, idx, options, env) -> str:
    return f'<pre class="code">{html.escape(tokens[idx].content)}</pre>\n'


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.inline.ruler.before("escape", "math_inline", _math_rule)
    md.add_render_rule("math_inline", _render_math)
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("link_close", _render_link_close)
    md.add_render_rule("image", _render_image)
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("code_block", _render_code_block)
    return md


def _style_markers(fragment: str) -> str:
    return _MARKER_RE.sub(r'<span class="ctrl">⟦\1⟧</span>', fragment)


def render_markdown(text: str) -> str:
    """Safe HTML (a fragment) for untrusted markdown text: see the module docstring."""
    note = ""
    if len(text) > MAX_RENDER_CHARS:
        note = f'<p class="note">[shown: the first {MAX_RENDER_CHARS:,} of {len(text):,} characters]</p>'
        text = text[:MAX_RENDER_CHARS]
    body = _markdown().render(_break_long_runs(neutralize(text)), {})
    body = body.replace("<table>", '<table border="1" cellspacing="0" cellpadding="5" class="table">')
    # Nothing above can emit an active element; assert it for defence in depth.
    body = re.sub(r"<(/?)(a|img|script|iframe|object|embed|link|style|meta)\b", r"&lt;\1\2", body)
    return _style_markers(body) + note


def render_plain(text: str) -> str:
    """Untrusted text as escaped HTML that keeps its line breaks (no markdown)."""
    body = html.escape(_break_long_runs(neutralize(text[:MAX_RENDER_CHARS])))
    return f'<div class="plain">{_style_markers(body)}</div>'


# -- diffs ------------------------------------------------------------------------------------
#
# A correction's diff reads as words inserted and deleted: the texts are cut into tokens
# (words, runs of spaces, single punctuation marks), each distinct token becomes one character
# (diff-match-patch's line-mode trick, applied to words), the character strings are diffed and
# given diff-match-patch's semantic cleanup (small equalities between two changes are folded
# into them, so "A 52 year old man" -> "With 52 year old man" is one deletion and one
# insertion, not "AWith"), and the characters are turned back into their tokens.

_TOKEN_RE = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
_WORD_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
#: The characters tokens are mapped to: the private use areas (never letters, digits or
#: spaces, so the cleanup's boundary scoring moves nothing) -- 6,400 + 131,068 distinct tokens.
_TOKEN_CHAR_RANGES = ((0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD))
_MAX_TOKENS = sum(hi - lo + 1 for lo, hi in _TOKEN_CHAR_RANGES)
#: Seconds the diff may take before it settles for a coarser answer (the editor re-diffs as
#: the tutor types).
DIFF_TIMEOUT_S = 0.5

#: A diff segment: ("equal" | "del" | "ins", text).
Segment = tuple[str, str]


def _token_char(i: int) -> str:
    for lo, hi in _TOKEN_CHAR_RANGES:
        if i <= hi - lo:
            return chr(lo + i)
        i -= hi - lo + 1
    raise ValueError("too many distinct tokens")


def _tokens_to_chars(texts: tuple[str, ...]) -> tuple[list[str], list[str]] | None:
    """Each text as a string of one character per token, and the token of each character
    (by its index in the ranges); None when there are more distinct tokens than characters."""
    index: dict[str, int] = {}
    tokens: list[str] = []
    encoded: list[str] = []
    for text in texts:
        chars = []
        for token in _TOKEN_RE.findall(text):
            i = index.get(token)
            if i is None:
                if len(tokens) >= _MAX_TOKENS:
                    return None
                i = index[token] = len(tokens)
                tokens.append(token)
            chars.append(_token_char(i))
        encoded.append("".join(chars))
    return encoded, tokens


def _char_index(ch: str) -> int:
    code = ord(ch)
    base = 0
    for lo, hi in _TOKEN_CHAR_RANGES:
        if lo <= code <= hi:
            return base + code - lo
        base += hi - lo + 1
    raise ValueError("not a token character")


def diff_segments(original: str, revised: str) -> list[Segment]:
    """The word-level diff of two texts, after semantic cleanup: a list of ("equal", text),
    ("del", text) and ("ins", text) in reading order; a replaced stretch is its deletion
    followed by its insertion. Joining the "equal" and "del" texts gives ``original``;
    joining "equal" and "ins" gives ``revised``."""
    from diff_match_patch import diff_match_patch  # here: only the correction editor needs it

    dmp = diff_match_patch()
    dmp.Diff_Timeout = DIFF_TIMEOUT_S
    mapped = _tokens_to_chars((original, revised))
    if mapped is None:  # an enormous text of distinct tokens: a character diff, cleaned up
        diffs = dmp.diff_main(original, revised, False)
        dmp.diff_cleanupSemantic(diffs)
    else:
        (chars_a, chars_b), tokens = mapped
        diffs = dmp.diff_main(chars_a, chars_b, False)
        dmp.diff_cleanupSemantic(diffs)
        diffs = [(op, "".join(tokens[_char_index(c)] for c in text)) for op, text in diffs]
    names = {dmp.DIFF_EQUAL: "equal", dmp.DIFF_DELETE: "del", dmp.DIFF_INSERT: "ins"}
    segments: list[Segment] = []
    for op, text in diffs:
        if not text:
            continue
        kind = names[op]
        if segments and segments[-1][0] == kind:
            segments[-1] = (kind, segments[-1][1] + text)
        else:
            segments.append((kind, text))
    # a replacement reads deletion first: put an insertion that precedes its deletion after it
    for i in range(len(segments) - 1):
        if segments[i][0] == "ins" and segments[i + 1][0] == "del":
            segments[i], segments[i + 1] = segments[i + 1], segments[i]
    return segments


def diff_stats(original: str, revised: str) -> tuple[int, int]:
    """(words inserted, words deleted) between two texts (a punctuation mark counts as one)."""
    ins = dele = 0
    for kind, text in diff_segments(original, revised):
        if kind == "ins":
            ins += len(_WORD_RE.findall(text))
        elif kind == "del":
            dele += len(_WORD_RE.findall(text))
    return ins, dele


def diff_html(original: str, revised: str) -> str:
    """The word-level diff as HTML: deletions in ``<span class="del">``, insertions in
    ``<span class="ins">`` (:func:`diff_segments`).

    Both texts are neutralised and escaped; line breaks are kept (the fragment is a
    ``pre-wrap`` block). Style the classes in the view (struck through on red, underlined
    on green: the theme's ``del_bg`` and ``ins_bg``).
    """
    parts: list[str] = []
    previous = ("equal", "")
    for kind, text in diff_segments(neutralize(original), neutralize(revised)):
        body = html.escape(text)
        if previous[0] == "del" and kind == "ins" and not (previous[1][-1:].isspace() or text[:1].isspace()):
            parts.append("\u2009")  # a thin space: "A" struck out, then "With", not "AWith"
        parts.append(body if kind == "equal" else f'<span class="{kind}">{body}</span>')
        previous = (kind, text)
    return f'<pre class="diff">{_style_markers("".join(parts))}</pre>'
