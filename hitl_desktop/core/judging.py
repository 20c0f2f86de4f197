"""The judgment being built on the bench: ranks as levels, flags, ratings, a correction.

Plain Python (no Qt) so the ranking scheme is easy to test. Ranks are kept as *levels*,
best first; each level is a list of candidate ids that tie. ``ranks()`` turns them into
``{candidate id: rank}`` with rank 1 = best.

Keyboard scheme (the bench maps keys onto these operations):

* ``rank_next(cid)``: the card gets the next rank (a new level below all others).
* ``tie_with_last(cid)``: the card joins the last (worst so far) level.
* ``move_up(cid)`` / ``move_down(cid)``: half a step: a card tied with others breaks out
  above (below) them; a card alone joins the level above (below). Any ranking is reachable.
* ``place(cid, target, how)``: drag and drop: ``"above"``, ``"tie"`` or ``"below"`` a target.
* ``clear(cid)`` / ``clear_all()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hitl_desktop.core.types import DEFAULT_STRENGTH, Correction, Judgment


@dataclass
class JudgingState:
    display_order: list[str]  # candidate ids as shown, left to right
    levels: list[list[str]] = field(default_factory=list)
    flags: dict[str, set[str]] = field(default_factory=dict)
    ratings: dict[str, dict[str, int]] = field(default_factory=dict)
    all_bad: bool = False
    rationale: str = ""
    strength: int = DEFAULT_STRENGTH
    correction: Correction | None = None

    # -- ranks -----------------------------------------------------------------------------

    def rank_of(self, cid: str) -> int | None:
        for i, level in enumerate(self.levels, start=1):
            if cid in level:
                return i
        return None

    def is_tied(self, cid: str) -> bool:
        r = self.rank_of(cid)
        return r is not None and len(self.levels[r - 1]) > 1

    def ranks(self) -> dict[str, int]:
        return {cid: i for i, level in enumerate(self.levels, start=1) for cid in level}

    def unranked(self) -> list[str]:
        ranked = self.ranks()
        return [cid for cid in self.display_order if cid not in ranked]

    def _remove(self, cid: str) -> None:
        for level in self.levels:
            if cid in level:
                level.remove(cid)
        self.levels = [lv for lv in self.levels if lv]

    def rank_next(self, cid: str) -> None:
        self._remove(cid)
        self.levels.append([cid])

    def tie_with_last(self, cid: str) -> None:
        self._remove(cid)
        if self.levels:
            self.levels[-1].append(cid)
        else:
            self.levels.append([cid])

    def move_up(self, cid: str) -> None:
        r = self.rank_of(cid)
        if r is None:
            self.rank_next(cid)
            return
        i = r - 1
        if len(self.levels[i]) > 1:
            self.levels[i].remove(cid)
            self.levels.insert(i, [cid])
        elif i > 0:
            self.levels.pop(i)
            self.levels[i - 1].append(cid)

    def move_down(self, cid: str) -> None:
        r = self.rank_of(cid)
        if r is None:
            self.rank_next(cid)
            return
        i = r - 1
        if len(self.levels[i]) > 1:
            self.levels[i].remove(cid)
            self.levels.insert(i + 1, [cid])
        elif i < len(self.levels) - 1:
            self.levels.pop(i)
            self.levels[i].append(cid)

    def place(self, cid: str, target: str, how: str) -> None:
        """Drag and drop: put ``cid`` above, tied with, or below ``target``."""
        if cid == target:
            return
        if self.rank_of(target) is None:
            self.rank_next(target)
        self._remove(cid)
        i = self.rank_of(target) - 1  # type: ignore[operator]
        if how == "tie":
            self.levels[i].append(cid)
        elif how == "above":
            self.levels.insert(i, [cid])
        elif how == "below":
            self.levels.insert(i + 1, [cid])
        else:
            raise ValueError(f"place: how must be above, tie or below, not {how!r}")

    def clear(self, cid: str) -> None:
        self._remove(cid)

    def clear_all(self) -> None:
        self.levels = []

    def set_levels_from_ranks(self, ranks: dict[str, int]) -> None:
        by_rank: dict[int, list[str]] = {}
        for cid in self.display_order:
            if cid in ranks:
                by_rank.setdefault(ranks[cid], []).append(cid)
        self.levels = [by_rank[r] for r in sorted(by_rank)]

    # -- flags, ratings ----------------------------------------------------------------------

    def toggle_flag(self, cid: str, flag: str) -> bool:
        s = self.flags.setdefault(cid, set())
        if flag in s:
            s.discard(flag)
        else:
            s.add(flag)
        return flag in s

    def set_flag(self, cid: str, flag: str, on: bool) -> None:
        s = self.flags.setdefault(cid, set())
        if on:
            s.add(flag)
        else:
            s.discard(flag)

    def set_rating(self, cid: str, scale: str, value: int | None) -> None:
        r = self.ratings.setdefault(cid, {})
        if value is None:
            r.pop(scale, None)
        else:
            r[scale] = value

    def forget(self, cid: str) -> None:
        """A candidate was regenerated: drop everything said about it."""
        self._remove(cid)
        self.flags.pop(cid, None)
        self.ratings.pop(cid, None)
        if self.correction is not None and self.correction.candidate_id == cid:
            self.correction = None

    def replace_id(self, old: str, new: str) -> None:
        self.forget(old)
        self.display_order = [new if c == old else c for c in self.display_order]

    # -- the judgment --------------------------------------------------------------------------

    def missing(self) -> list[str]:
        """Why the judgment cannot be submitted yet (empty when it can)."""
        unranked = self.unranked()
        if self.all_bad or len(unranked) <= 1:
            return []
        return [f"{len(unranked)} cards are not ranked yet"]

    def final_ranks(self) -> dict[str, int]:
        """Ranks for submission: one card left over is last; with "all bad" every unranked
        card ties last."""
        ranks = self.ranks()
        rest = self.unranked()
        if rest and (self.all_bad or len(rest) == 1):
            last = len(self.levels) + 1
            for cid in rest:
                ranks[cid] = last
        return ranks

    def to_judgment(
        self,
        *,
        prompt_id: str,
        tutor_id: str,
        session_id: str | None,
        guideline_version: str,
        seconds_spent: float | None,
    ) -> Judgment:
        ranks = self.final_ranks()
        return Judgment(
            prompt_id=prompt_id,
            tutor_id=tutor_id,
            session_id=session_id,
            ranks=ranks,
            all_bad=self.all_bad,
            flags={cid: sorted(f) for cid, f in self.flags.items() if f and cid in ranks},
            ratings={cid: dict(r) for cid, r in self.ratings.items() if r and cid in ranks},
            rationale=self.rationale.strip(),
            strength=self.strength,
            seconds_spent=seconds_spent,
            display_order=list(self.display_order),
            guideline_version=guideline_version,
            correction=self.correction,
        )

    @classmethod
    def from_judgment(cls, judgment: Judgment, display_order: Sequence[str]) -> JudgingState:
        order = list(judgment.display_order) or list(display_order)
        state = cls(display_order=order)
        state.set_levels_from_ranks(judgment.ranks)
        state.flags = {cid: set(f) for cid, f in judgment.flags.items()}
        state.ratings = {cid: dict(r) for cid, r in judgment.ratings.items()}
        state.all_bad = judgment.all_bad
        state.rationale = judgment.rationale
        state.strength = judgment.strength
        state.correction = judgment.correction
        return state

    def best(self) -> str | None:
        """The best-ranked candidate (first shown among a tie), None when nothing is ranked."""
        if not self.levels:
            return None
        order = {cid: i for i, cid in enumerate(self.display_order)}
        return min(self.levels[0], key=lambda c: order.get(c, len(order)))
