"""What an export is: its formats, their columns (names, types, descriptions), the summary
it returns and the one error it raises. The columns are a contract (the field names TRL and
the known datasets use); their types keep Parquet and the datasets folder consistent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hitl_desktop.core.judgment_records import FIELDS as JUDGMENT_FIELDS
from hitl_desktop.core.types import RATING_SCALES
from hitl_desktop.core.wording import counted

FORMATS: tuple[str, ...] = (
    "trl-preference",
    "trl-preference-chat",
    "hh-rlhf",
    "ultrafeedback",
    "nectar",
    "kto",
    "sft",
    "judgments",
)

class ExportError(Exception):
    """An export that cannot be done; the message is one line a tutor can act on."""


@dataclass
class ExportSummary:
    format: str
    out: Path
    files: list[Path]
    rows: int
    train_rows: int
    test_rows: int
    judgments: int
    prompts: int
    pairs: int
    domains: list[str] = field(default_factory=list)
    #: rows each rule left out: reason -> count (keys in ``core.ranking``)
    dropped: dict[str, int] = field(default_factory=dict)
    #: with --consensus: how many prompts had two or more tutors (None without it)
    consensus_prompts: int | None = None
    #: one-line remarks for the tutor (e.g. a consensus with nothing to combine)
    notes: list[str] = field(default_factory=list)

    def dropped_text(self) -> str:
        """``"2 unchanged corrections ignored; 1 ..."``, or "" when nothing was dropped."""
        return "; ".join(counted(n, why) for why, n in sorted(self.dropped.items()) if n)


# -- columns: names, types and descriptions (types keep Parquet / datasets consistent) -------

# kinds: str, float, int (nullable), bool, messages (list of {role, content}),
# answers (list of {answer, model, rank})
_META_PAIR = [
    ("judgment_id", "str", "id of the tutor's judgment the row comes from"),
    ("prompt_id", "str", "hitl-desktop prompt id (rows of one prompt are in one split)"),
    ("domain", "str", "specialist domain of the judgment"),
    ("tutor", "str", "the tutor (pseudonymised unless exported with tutor names)"),
    (
        "chosen_model",
        "str",
        'model that wrote the chosen answer ("tutor:<tutor>" for a correction)',
    ),
    ("rejected_model", "str", "model that wrote the rejected answer"),
    ("chosen_seed", "int", "sampling seed of the chosen answer (null for a correction)"),
    ("rejected_seed", "int", "sampling seed of the rejected answer"),
    (
        "source",
        "str",
        '"ranking" (two ranked candidates), "correction" (tutor\'s rewrite chosen), '
        '"consensus" (a majority pair of several tutors) or "adjudication" (a lead\'s ruling; '
        'tutor is the adjudicator)',
    ),
    ("created_at", "str", "time of the judgment, ISO 8601 UTC"),
    ("chosen_flags", "flags", "flags the tutor raised on the chosen answer"),
    ("rejected_flags", "flags", "flags the tutor raised on the rejected answer"),
    ("chosen_ratings", "ratings", "the tutor's 1-5 ratings of the chosen answer (null: not rated)"),
    ("rejected_ratings", "ratings", "the tutor's 1-5 ratings of the rejected answer"),
    ("rationale", "str", "the tutor's rationale for the judgment"),
]
_META_UNPAIRED = [
    ("judgment_id", "str", "id of the tutor's judgment the row comes from"),
    ("prompt_id", "str", "hitl-desktop prompt id (rows of one prompt are in one split)"),
    ("domain", "str", "specialist domain of the judgment"),
    ("tutor", "str", "the tutor (pseudonymised unless exported with tutor names)"),
    ("model", "str", 'model that wrote the completion ("tutor:<tutor>" for a correction)'),
    ("seed", "int", "sampling seed of the completion (null for a correction)"),
    (
        "source",
        "str",
        '"ranking" (a ranked candidate), "correction" (the tutor\'s rewrite) or "adjudication" '
        "(ranked by a lead's ruling; tutor is the adjudicator)",
    ),
    ("created_at", "str", "time of the judgment, ISO 8601 UTC"),
]
_MARGIN = ("margin", "float", "rank distance x strength / 2 (see the margin formula)")

COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "trl-preference": [
        ("prompt", "str", "the user turn (earlier turns rendered as 'Role: text' paragraphs)"),
        ("chosen", "str", "the better answer"),
        ("rejected", "str", "the worse answer"),
        _MARGIN,
        *_META_PAIR,
    ],
    "trl-preference-chat": [
        ("prompt", "messages", "earlier turns and the final user turn, as {role, content}"),
        ("chosen", "messages", "[{role: assistant, content: the better answer}]"),
        ("rejected", "messages", "[{role: assistant, content: the worse answer}]"),
        _MARGIN,
        *_META_PAIR,
    ],
    "hh-rlhf": [
        ("chosen", "str", "whole transcript ending with the better answer"),
        ("rejected", "str", "whole transcript ending with the worse answer"),
        *_META_PAIR,
    ],
    "ultrafeedback": [
        ("prompt", "str", "the user turn (earlier turns rendered as 'Role: text' paragraphs)"),
        ("prompt_id", "str", "sha256 hex digest of the prompt string"),
        ("chosen", "messages", "conversation ending with the better answer"),
        ("rejected", "messages", "conversation ending with the worse answer"),
        ("messages", "messages", "the same as chosen"),
        ("score_chosen", "float", "mean rating when both answers are rated, else levels - dense rank + 1"),
        ("score_rejected", "float", "mean rating when both answers are rated, else levels - dense rank + 1"),
        ("hitl_prompt_id", "str", "hitl-desktop prompt id (rows of one prompt are in one split)"),
        *[c for c in _META_PAIR if c[0] != "prompt_id"],
    ],
    "nectar": [
        ("prompt", "str", 'transcript "\\n\\nHuman: ...\\n\\nAssistant:"'),
        ("answers", "answers", "[{answer, model, rank}] best first; ties share a rank"),
        ("num_responses", "int", "number of answers"),
        ("turns", "int", "number of user turns in the conversation"),
        ("all_bad", "bool", "the tutor found no candidate acceptable"),
        *[c for c in _META_UNPAIRED if c[0] not in ("model", "seed")],
    ],
    "kto": [
        ("prompt", "str", "the user turn (earlier turns rendered as 'Role: text' paragraphs)"),
        ("completion", "str", "an answer"),
        ("label", "bool", "true: desirable (correction or top-ranked); false: undesirable"),
        *_META_UNPAIRED,
    ],
    "sft": [
        ("prompt", "str", "the user turn (earlier turns rendered as 'Role: text' paragraphs)"),
        ("completion", "str", "a correction (or a top-ranked answer)"),
        ("messages", "messages", "the whole conversation ending with the completion"),
        *_META_UNPAIRED,
    ],
    # JSONL only: nested provenance (core/judgment_records.py lists every field)
    "judgments": [(name, "json", "see core/judgment_records.py") for name in JUDGMENT_FIELDS],
}


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")


def arrow_schema(fmt: str):
    """The pyarrow schema of a format's rows (the same for Parquet and the datasets folder)."""
    import pyarrow as pa

    check_format(fmt)
    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    answers = pa.list_(
        pa.struct([("answer", pa.string()), ("model", pa.string()), ("rank", pa.int64())])
    )
    kinds = {
        "flags": pa.list_(pa.string()),
        "ratings": pa.struct([(scale, pa.int64()) for scale in RATING_SCALES]),
        "str": pa.string(),
        "float": pa.float64(),
        "int": pa.int64(),
        "bool": pa.bool_(),
        "messages": messages,
        "answers": answers,
    }
    return pa.schema([(name, kinds[kind]) for name, kind, _ in COLUMNS[fmt]])


