"""JSON lines made from pieces encoded once, for the export's most used format
(``trl-preference``): a judgment's prompt and columns once per judgment, each side's (a
candidate's, or the correction's) text, model, seed, flags and ratings once per side, not
once per pair (K candidates make K*(K-1)/2 pairs), with no dict per row.

The bytes are those of ``files.jsonl_encoder`` on ``rows.build_rows``' dicts, in their key
order: json's compact encoding with ``ensure_ascii=False``, each value by
``files.json_value`` (orjson where it writes json's bytes, else json), so a line is its
pieces joined. tests/core/test_export_digests.py pins the files, tests/core/test_fast_paths.py
compares the lines with the rows' on drawn judgments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from hitl_desktop.core.export.files import json_value
from hitl_desktop.core.export.rows import render_prompt
from hitl_desktop.core.ranking import PairSpec, Side, pair_specs
from hitl_desktop.core.types import ADJUDICATION_TUTOR_ID, JudgedItem

#: How many repeating values' encodings are kept (then forgotten, and kept again).
_MEMO = 4096

#: A side's pieces: text, model, seed, flags, ratings (JSON bytes).
_Pieces = tuple[bytes, bytes, bytes, bytes, bytes]


class TrlPreferenceLines:
    """``trl-preference`` rows as JSON lines (bytes, each ending in a newline)."""

    def __init__(self) -> None:
        self.enc = json_value()
        #: the encodings of values that repeat across judgments (sources, domains, tutors,
        #: models; margins above 0, whose equal floats write the same), up to _MEMO of them
        self._memo: dict[object, bytes] = {}

    def _same(self, value: str | float) -> bytes:
        b = self._memo.get(value)
        if b is None:
            if len(self._memo) >= _MEMO:
                self._memo.clear()
            b = self._memo[value] = self.enc(value)
        return b

    def _side(self, side: Side) -> _Pieces:
        enc, seed = self.enc, side[3]
        return (enc(side[0]), self._same(side[2]), b"null" if seed is None else enc(seed),
                enc(list(side[4])) if side[4] else b"[]", enc(dict(side[5])) if side[5] else b"null")  # fmt: skip

    def item(self, item: JudgedItem, pairs: list[PairSpec], tutor: str) -> list[bytes]:
        """The lines of one judgment's pairs (``rows._trl_preference_rows``, key for key)."""
        enc = self.enc
        j = item.judgment
        head = b'{"prompt":' + enc(render_prompt(item.prompt.messages, item.prompt.text)) + b',"chosen":'
        same = self._same
        mid = (b',"prompt_id":' + enc(item.prompt.id) + b',"judgment_id":' + enc(j.id) + b',"domain":'
               + same(item.domain) + b',"tutor":' + same(tutor) + b',"chosen_model":')  # fmt: skip
        when = b',"created_at":' + enc(j.created_at) + b',"chosen_flags":'
        end = b',"rationale":' + enc(j.rationale) + b"}\n"
        ranking = same("adjudication" if j.tutor_id == ADJUDICATION_TUTOR_ID else "ranking")
        tutor_model = same(f"tutor:{tutor}")
        sides: dict[int, _Pieces] = {}  # by id(): the sides are alive (in ``pairs``) meanwhile
        out = []
        for ch, rej, value, source in pairs:
            c = sides.get(id(ch))
            if c is None:
                c = sides[id(ch)] = self._side(ch)
            r = sides.get(id(rej))
            if r is None:
                r = sides[id(rej)] = self._side(rej)
            value = float(value)
            out.append(b"".join((
                head, c[0], b',"rejected":', r[0], b',"margin":', same(value) if value > 0 else enc(value), mid,
                tutor_model if source == "correction" else c[1], b',"rejected_model":', r[1],
                b',"chosen_seed":', c[2], b',"rejected_seed":', r[2], b',"source":',
                ranking if source == "ranking" else same(source), when, c[3],
                b',"rejected_flags":', r[3], b',"chosen_ratings":', c[4], b',"rejected_ratings":', r[4], end,
            )))  # fmt: skip
        return out


#: Formats whose rows can be made as JSON lines directly (``build_lines``).
LINES = {"trl-preference": TrlPreferenceLines}


def lines_builder(fmt: str) -> Callable[..., list[bytes]]:
    """``build_rows`` for a format of ``LINES``, each row its JSON line:
    ``build(fmt, items, tutor_name=..., dropped=...)`` (one maker, its encodings cached, for
    every batch)."""
    maker = LINES[fmt]()

    def build(
        fmt_: str,
        items: Iterable[JudgedItem],
        *,
        tutor_name: Callable[[str], str] = lambda name: name,
        dropped: Counter[str] | None = None,
    ) -> list[bytes]:
        if fmt_ != fmt:
            raise ValueError(f"lines of {fmt!r}, not {fmt_!r}")
        out: list[bytes] = []
        for item in items:
            tutor = tutor_name(item.tutor_name)
            pairs = pair_specs(item, dropped)
            if pairs:
                out.extend(maker.item(item, pairs, tutor))
        return out

    return build
