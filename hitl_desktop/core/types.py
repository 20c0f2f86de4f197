"""The things a tutor's bench is made of, as plain dataclasses.

Nothing here touches SQLite or Qt: the store turns rows into these, the GUI shows them,
the exporters write them.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: Flags a tutor can raise on a candidate.
FLAGS: tuple[str, ...] = (
    "incorrect",
    "unsafe",
    "hallucination",
    "incomplete",
    "off-topic",
    "style",
)

#: Flags that make a completion undesirable whatever its rank: never a KTO ``label = true``,
#: never an SFT completion.
DISQUALIFYING_FLAGS: frozenset[str] = frozenset({"incorrect", "unsafe", "hallucination"})

#: Rating scales a tutor can fill per candidate (1-5).
RATING_SCALES: tuple[str, ...] = ("helpfulness", "correctness")

#: Strength of preference: how much better the tutor finds the better answers.
#: 1 = slightly, 2 = clearly (the default), 3 = much better. See ranking.margin().
STRENGTHS: dict[int, str] = {1: "slightly better", 2: "clearly better", 3: "much better"}
DEFAULT_STRENGTH = 2

#: The tutor name of a consensus ranking (several tutors' rankings of one prompt combined).
CONSENSUS_TUTOR = "consensus"
#: The tutor id of a lead's adjudication in an export (its tutor name is the adjudicator's).
ADJUDICATION_TUTOR_ID = "adjudication"

#: Domains offered out of the box; tutors may add their own.
DEFAULT_DOMAINS: tuple[str, ...] = ("medicine", "finance", "stem", "coding", "law", "general")


#: The random bits of ``new_id``: a generator of its own, seeded from the OS (``os.urandom``)
#: and again in a forked child, so that no ``random.seed`` elsewhere (a library setting seeds
#: for generation) makes two processes draw the same ids. (An ``os.urandom`` call per id cost
#: 0.2 s of an import of 100,000 judgments, which makes 250,000 ids.)
_ID_BITS = random.Random()
os.register_at_fork(after_in_child=_ID_BITS.seed)


def new_id() -> str:
    """A fresh UUID as text (RFC 9562 version 7): databases from several workstations merge
    without clashes (62 random bits beside a sub-millisecond time), and ids made one after
    another sort in that order.

    Time-ordered ids keep an import's or a session's new rows next to each other in every
    index on an id (primary keys, ``candidates.prompt_id``...): a bulk insert of 100 000 rows
    writes far fewer B-tree pages than with random (version 4) ids. Layout: 48 bits of Unix
    time in ms, the version 7, 12 bits of the sub-millisecond fraction, the variant, 62
    random bits."""
    ms, sub = divmod(time.time_ns(), 1_000_000)
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (sub * 4096 // 1_000_000) << 64
        | 0b10 << 62
        | _ID_BITS.getrandbits(62)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_second: tuple[int, str] = (-1, "")  # (Unix second, its "YYYY-MM-DDTHH:MM:SS")


def now_iso() -> str:
    """Current UTC time, ISO 8601 with microseconds (sorts as text), exactly as
    ``datetime.now(timezone.utc).isoformat(timespec="microseconds")`` writes it; the date and
    time of the current second are formatted once (an import makes a few per row)."""
    global _second
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{micro:06d}+00:00"


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass
class Tutor:
    name: str
    domains: list[str] = field(default_factory=list)
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=now_iso)


@dataclass
class Session:
    tutor_id: str
    domain: str
    guideline_version: str = ""
    id: str = field(default_factory=new_id)
    started_at: str = field(default_factory=now_iso)
    ended_at: str | None = None


@dataclass
class Prompt:
    """A user turn to be answered, with the conversation that led to it."""

    text: str
    domain: str = "general"
    messages: list[Message] = field(default_factory=list)  # earlier turns, oldest first
    external_id: str | None = None
    source: str = ""
    parent_judgment_id: str | None = None  # set when it continues a judged conversation
    #: a gold item's reference ranks, candidate id -> rank (table gold_rankings); hidden from tutors
    gold_ranking: dict[str, int] | None = None
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=now_iso)

    def conversation(self) -> list[Message]:
        """Earlier turns plus this prompt as the last user turn."""
        return [*self.messages, Message("user", self.text)]


@dataclass
class Candidate:
    """One answer to a prompt, with how it was made (provenance)."""

    prompt_id: str
    text: str
    model: str = ""
    model_revision: str = ""  # file sha256 or model revision
    dtype: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # sampling parameters
    seed: int | None = None
    tokens: int | None = None
    seconds: float | None = None
    index: int = 0  # position in the generated (not displayed) order
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=now_iso)


@dataclass
class Correction:
    """A tutor's rewrite of a candidate: a new, better response."""

    text: str
    candidate_id: str | None  # the candidate it corrects (None: written from scratch)
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=now_iso)


@dataclass
class Judgment:
    """A tutor's verdict on one prompt's candidates.

    ``ranks`` maps candidate id to rank (1 = best, equal ranks are ties). ``all_bad`` says no
    candidate is acceptable; with no correction it yields no pair.
    """

    prompt_id: str
    tutor_id: str
    ranks: dict[str, int]
    session_id: str | None = None
    all_bad: bool = False
    flags: dict[str, list[str]] = field(default_factory=dict)  # candidate id -> flags
    ratings: dict[str, dict[str, int]] = field(default_factory=dict)  # cand id -> scale -> 1..5
    rationale: str = ""
    strength: int = DEFAULT_STRENGTH
    seconds_spent: float | None = None
    display_order: list[str] = field(default_factory=list)  # candidate ids as shown, left to right
    guideline_version: str = ""
    correction: Correction | None = None
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=now_iso)
    supersedes: str | None = None  # the judgment this one re-judges (kept for audit)
    #: what an imported row said that its ranking cannot carry, written back on export:
    #: ``{"margin": float}`` (a pair's), ``{"scores": {candidate id: float}}`` (UltraFeedback)
    source_values: dict[str, Any] = field(default_factory=dict)
    #: a graded judgment: whether the final ranking orders two candidates unlike their rubric
    #: scores (core/rubrics.ranking_departs); None for a judgment made without grades
    departs_from_scores: bool | None = None


@dataclass(frozen=True)
class Majority:
    """A consensus pair: more of the judgments that ranked both put ``winner`` above ``loser``
    (``votes_for``) than the other way round (``votes_against``)."""

    winner: str  # candidate id
    loser: str
    votes_for: int
    votes_against: int


@dataclass
class JudgedItem:
    """A judgment joined with everything export needs: its prompt, candidates, tutor, domain."""

    judgment: Judgment
    prompt: Prompt
    candidates: list[Candidate]  # in generated order
    tutor_name: str
    domain: str  # the session's domain, else the prompt's
    #: A consensus item's majority pairs (core/consensus.py): its pairs are exactly these.
    majorities: tuple[Majority, ...] | None = None
    #: A consensus member's correction carried alone: only its correction rows are exported.
    correction_only: bool = False
    #: A graded judgment's rubric scores, candidate id -> score (core/rubric_export.py
    #: ``attach_rubric_scores``): its ranking pairs' margin is score(chosen) - score(rejected).
    rubric_scores: dict[str, float] | None = None


@dataclass(frozen=True)
class PreferencePair:
    """One reward-model training example: ``chosen`` is better than ``rejected``."""

    prompt_id: str
    judgment_id: str
    prompt: str
    messages: tuple[Message, ...]  # earlier turns (without the prompt)
    chosen: str
    rejected: str
    margin: float
    source: str  # "ranking" | "correction" | "consensus"
    domain: str
    tutor: str
    chosen_model: str
    rejected_model: str
    chosen_id: str  # candidate id or correction id
    rejected_id: str
    chosen_seed: int | None = None
    rejected_seed: int | None = None
    created_at: str = ""
    chosen_flags: tuple[str, ...] = ()
    rejected_flags: tuple[str, ...] = ()
    chosen_ratings: tuple[tuple[str, int], ...] = ()  # (scale, 1..5), as a hashable mapping
    rejected_ratings: tuple[tuple[str, int], ...] = ()
    rationale: str = ""


@dataclass
class Adjudication:
    """A lead's ruling on a prompt the tutors disagree on: the adjudicated ranking.

    ``ranks`` maps candidate id to rank (1 = best, ties allowed), like a judgment's. A prompt
    may be adjudicated again: every adjudication is kept (audit), the latest is the current one
    (see core/review.py).
    """

    prompt_id: str
    ranks: dict[str, int]
    rationale: str
    adjudicator: str
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=now_iso)
