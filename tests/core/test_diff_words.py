"""The correction diff (core/rendering.diff_segments): word-level, semantically cleaned up."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.core import rendering

WORDS = ["the", "dose", "is", "5", "10", "mg", "daily", "twice", "eGFR", "1.48m²", "—", "café", "日本", "x"]
text = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from([" ", " ", ", ", ".\n", "  "])), max_size=25
).map(lambda parts: "".join(w + sep for w, sep in parts))


def _sides(segments):
    return ("".join(t for k, t in segments if k != "ins"), "".join(t for k, t in segments if k != "del"))


@settings(max_examples=200, deadline=None)
@given(text, text)
def test_the_segments_give_back_both_texts_and_change_whole_words(a, b):
    segments = rendering.diff_segments(a, b)
    assert _sides(segments) == (a, b)
    assert all(t for _k, t in segments) and all(k in ("equal", "del", "ins") for k, _t in segments)
    assert all(x[0] != y[0] for x, y in zip(segments, segments[1:]))  # runs are merged
    assert not any(x[0] == "ins" and y[0] == "del" for x, y in zip(segments, segments[1:]))
    # a change never starts or ends inside a word of its own text
    for side, own in (("del", a), ("ins", b)):
        at = 0
        for k, t in segments:
            if k not in ("equal", side):
                continue
            if k == side:
                for i in (at, at + len(t)):
                    assert not (re.match(r"\w", own[i - 1 : i]) and re.match(r"\w", own[i : i + 1]))
            at += len(t)


@given(text)
def test_an_unchanged_text_is_one_equal_segment(a):
    assert rendering.diff_segments(a, a) == ([("equal", a)] if a else [])
    assert rendering.diff_stats(a, a) == (0, 0)


def test_semantic_cleanup_folds_small_equalities_into_the_change():
    # token by token, "the" and the spaces would stay "equal" between changes
    segments = rendering.diff_segments("The cat sat.", "A dog lay.")
    assert segments == [("del", "The cat sat"), ("ins", "A dog lay"), ("equal", ".")]
    assert rendering.diff_stats("The cat sat.", "A dog lay.") == (3, 3)
    # an equality longer than the change after it stays: "the" is common to both
    assert rendering.diff_segments("The cat sat on the mat.", "A dog lay under the rug.") == [
        ("del", "The cat sat on"), ("ins", "A dog lay under"), ("equal", " the "),
        ("del", "mat"), ("ins", "rug"), ("equal", "."),
    ]


def test_more_distinct_tokens_than_characters_falls_back_to_a_character_diff(monkeypatch):
    monkeypatch.setattr(rendering, "_MAX_TOKENS", 3)
    segments = rendering.diff_segments("alpha beta gamma", "alpha beta delta")
    assert _sides(segments) == ("alpha beta gamma", "alpha beta delta")
