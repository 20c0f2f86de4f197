"""Preference-data layouts an import understands, and how a row becomes an import record.

A JSONL file's layout is found from the fields of its first record (or given with
``import --format``; core/importing/registry.py, the selecting fields below); every line is
then read in that layout. A record whose fields fit no layout is refused, naming the fields
found. This module turns a pair or Nectar row into an import record (``to_record``).

=======================  =================================================================
layout                   fields that select it / what a row becomes
=======================  =================================================================
``records``              ``prompt`` (and ``candidates``, ``ranking``...): the import record
                         layout (README "Import files")
``judgments``            ``judgment_id`` and ``candidates``: our ``judgments`` export, every
                         id and provenance kept (core/judgment_records.py)
``trl-preference``       ``prompt`` (string), ``chosen``, ``rejected`` (strings)
``trl-preference-chat``  ``prompt`` (message list), ``chosen``, ``rejected`` (one assistant
                         message each)
``hh-rlhf``              ``chosen``, ``rejected`` (whole ``\\n\\nHuman: ...\\n\\nAssistant: ...``
                         transcripts, no ``prompt``): Anthropic HH-RLHF
``ultrafeedback``        ``chosen``, ``rejected`` (message lists ending with the answer):
                         UltraFeedback binarized (``prompt``, ``prompt_id``, ``messages``,
                         ``score_chosen``, ``score_rejected``)
``nectar``               ``prompt`` (transcript ending ``\\n\\nAssistant:``), ``answers`` =
                         ``[{answer, model, rank}]``: Nectar's K-wise ranking
=======================  =================================================================

A pair row is one finished judgment of two candidates, chosen ranked 1 and rejected 2; a
Nectar row one judgment of its answers with their ranks. Our own metadata columns are read
back: ``tutor``, ``domain``, ``chosen_model`` / ``rejected_model``, ``chosen_seed`` /
``rejected_seed``, ``chosen_flags`` / ``rejected_flags``, ``chosen_ratings`` /
``rejected_ratings``, ``rationale``, ``created_at``. What the two ranks of a pair cannot
express is kept with the judgment (``judgments.source_values``) and written back on export:
any ``margin`` (0.5, 1 and 1.5 also set the strength, ``margin = strength / 2``), and
UltraFeedback's ``score_chosen`` / ``score_rejected`` (when both are given). Fields that have
no place in a judgment (a public dataset's ``source``, one score without the other...) are not
kept, and the import summary names them with their counts: nothing is dropped silently.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

LAYOUTS: tuple[str, ...] = (
    "records",
    "judgments",
    "trl-preference",
    "trl-preference-chat",
    "hh-rlhf",
    "ultrafeedback",
    "nectar",
)

#: Fields of the import record layout (and of the ``judgments`` export).
RECORD_FIELDS = frozenset(
    {
        "id", "prompt", "domain", "messages", "candidates", "ranking", "tutor", "correction",
        "corrected_index", "all_bad", "strength", "rationale", "flags", "ratings", "gold_ranking",
    }
)  # fmt: skip

#: Our metadata columns, read back into the judgment (pair formats).
_PAIR_META = frozenset(
    {
        "judgment_id", "prompt_id", "domain", "tutor", "chosen_model", "rejected_model",
        "chosen_seed", "rejected_seed", "source", "created_at", "chosen_flags",
        "rejected_flags", "chosen_ratings", "rejected_ratings", "rationale", "hitl_prompt_id",
    }
)  # fmt: skip

#: Fields read into the judgment or derived again on export (not reported as not kept).
_DERIVED = {
    "trl-preference": frozenset({"margin"}),
    "trl-preference-chat": frozenset({"margin"}),
    "hh-rlhf": frozenset({"margin"}),
    "ultrafeedback": frozenset({"prompt", "prompt_id", "messages", "score_chosen", "score_rejected", "margin"}),
    "nectar": frozenset({"num_responses", "turns", "all_bad", "judgment_id", "prompt_id", "domain",
                         "tutor", "source", "created_at", "rationale"}),
}  # fmt: skip

#: Namespace of the ids of judgments imported from pair and Nectar rows.
ROW_NAMESPACE = uuid.UUID("9a4c2e61-7d3b-5f80-a1c9-3e5b7d2f4c18")

#: ``json.dumps(value, ensure_ascii=False)`` without an encoder per call (the row keys hash it)
_to_json = json.JSONEncoder(ensure_ascii=False).encode

_TURN = re.compile(r"\n\n(Human|Assistant|System):[ ]?")
_ROLE = {"Human": "user", "Assistant": "assistant", "System": "system"}


class RowError(Exception):
    """A row that does not fit its layout; ``field`` names the row's own field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error never holds a whole field)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit number"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_transcript(text: Any, field: str) -> list[dict[str, str]]:
    """``"[system]\\n\\nHuman: a\\n\\nAssistant: b..."`` -> ``[{role, content}, ...]``."""
    if not isinstance(text, str):
        raise RowError(field, "is missing or not a string")
    parts = _TURN.split(text)
    turns: list[dict[str, str]] = []
    if parts[0].strip():
        turns.append({"role": "system", "content": parts[0]})
    for i in range(1, len(parts), 2):
        turns.append({"role": _ROLE[parts[i]], "content": parts[i + 1]})
    if not any(t["role"] == "user" for t in turns):
        raise RowError(field, 'is not a "\\n\\nHuman: ...\\n\\nAssistant: ..." transcript')
    return turns


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        raise RowError(key, "is missing")
    if not isinstance(value, str):
        raise RowError(key, f"must be a string, not {type(value).__name__}")
    return value


def _messages(value: Any, field: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RowError(field, "is missing or not a non-empty list of {role, content} messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise RowError(f"{field}[{i}]", "must be an object with role and content")
        if m.get("role") not in ("system", "user", "assistant"):
            raise RowError(f"{field}[{i}].role", f"must be system, user or assistant, not {_shown(m.get('role'))}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _split_conversation(turns: list[dict[str, str]], field: str) -> tuple[list[dict[str, str]], str]:
    """(earlier turns, final user turn) of a conversation that ends with a user turn."""
    if not turns or turns[-1]["role"] != "user":
        raise RowError(field, "must end with a user turn")
    return turns[:-1], turns[-1]["content"]


def _answer(turns: list[dict[str, str]], field: str) -> tuple[list[dict[str, str]], str]:
    """(the conversation before it, the answer) of a conversation ending with an answer."""
    if len(turns) < 2 or turns[-1]["role"] != "assistant":
        raise RowError(field, "must end with an assistant answer after a user turn")
    return turns[:-1], turns[-1]["content"]


def _number(obj: dict[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError(key, f"must be a number, not {type(value).__name__}")
    if isinstance(value, int) and abs(value) > 2**63:
        raise RowError(key, f"is too large ({_shown(value)})")
    if not math.isfinite(value):
        raise RowError(key, f"must be a finite number, not {value}")
    return float(value)


def _keep_margin(obj: dict[str, Any], record: dict[str, Any]) -> None:
    """A pair's ``margin`` is kept as the source said it (``source_values``, written back on
    export); 0.5, 1 and 1.5 also give the judgment's strength (``margin = strength / 2``)."""
    margin = _number(obj, "margin")
    if margin is None:
        return
    for strength in (1, 2, 3):
        if margin == strength / 2:
            record["strength"] = strength
    record.setdefault("source_values", {})["margin"] = margin


def _keep_scores(obj: dict[str, Any], record: dict[str, Any], unkept: dict[str, int]) -> None:
    """UltraFeedback's ``score_chosen`` and ``score_rejected`` are kept as the source said them
    (``source_values``, by candidate: chosen first) when both are given; one alone is reported."""
    scores = [_number(obj, "score_chosen"), _number(obj, "score_rejected")]
    if None not in scores:
        record.setdefault("source_values", {})["scores"] = scores
    elif scores != [None, None]:
        unkept["score_chosen/score_rejected"] = unkept.get("score_chosen/score_rejected", 0) + 1


def _meta(obj: dict[str, Any], record: dict[str, Any], prefix: tuple[str, str]) -> None:
    for key in ("tutor", "domain", "rationale"):
        if obj.get(key) not in (None, ""):
            record[key] = obj[key]
    flags = [obj.get(f"{p}_flags") or [] for p in prefix]
    if any(flags):
        record["flags"] = flags
    ratings = [obj.get(f"{p}_ratings") for p in prefix]
    if any(ratings):
        record["ratings"] = [
            {k: v for k, v in (r or {}).items() if v is not None} if isinstance(r, dict) else r
            for r in ratings
        ]


def _pair_record(
    obj: dict[str, Any], earlier: list[dict[str, str]], prompt: str, chosen: str, rejected: str
) -> dict[str, Any]:
    if chosen == rejected:
        raise RowError("rejected", "is the same text as chosen (a pair needs two answers)")
    record: dict[str, Any] = {
        "prompt": prompt,
        "messages": earlier,
        "candidates": [
            {"text": chosen, "model": obj.get("chosen_model") or ""},
            {"text": rejected, "model": obj.get("rejected_model") or ""},
        ],
        "ranking": [1, 2],
    }
    seeds = [obj.get("chosen_seed"), obj.get("rejected_seed")]
    for cand, seed in zip(record["candidates"], seeds, strict=True):
        if seed is not None:
            cand["seed"] = seed
    _meta(obj, record, ("chosen", "rejected"))
    return record


def to_record(layout: str, obj: Any, unkept: dict[str, int]) -> tuple[dict[str, Any], str | None]:
    """A row of ``layout`` as an import record, and its judgment's key (None for ``records``:
    one judgment per prompt and tutor). ``unkept`` counts the fields not kept, by name."""
    if not isinstance(obj, dict):
        raise RowError("", f"a record must be a JSON object, not {type(obj).__name__}")
    if layout in ("records", "judgments"):
        return obj, None
    if layout == "nectar":
        record = _nectar(obj)
        known = {"prompt", "answers"} | _DERIVED["nectar"]
    else:
        chosen_key = "chosen" if "chosen" in obj else None
        if chosen_key is None:
            raise RowError("chosen", "is missing")
        if "rejected" not in obj:
            raise RowError("rejected", "is missing")
        if layout == "trl-preference":
            record = _pair_record(obj, [], _text(obj, "prompt"), _text(obj, "chosen"), _text(obj, "rejected"))
        elif layout == "hh-rlhf":
            c_turns, r_turns = parse_transcript(obj["chosen"], "chosen"), parse_transcript(obj["rejected"], "rejected")
            (c_conv, c_ans), (r_conv, r_ans) = _answer(c_turns, "chosen"), _answer(r_turns, "rejected")
            if c_conv != r_conv:
                raise RowError("rejected", "its conversation before the answer differs from chosen's")
            earlier, prompt = _split_conversation(c_conv, "chosen")
            record = _pair_record(obj, earlier, prompt, c_ans, r_ans)
        elif layout == "trl-preference-chat":
            earlier, prompt = _split_conversation(_messages(obj.get("prompt"), "prompt"), "prompt")
            answers = []
            for key in ("chosen", "rejected"):
                msgs = _messages(obj[key], key)
                if len(msgs) != 1 or msgs[0]["role"] != "assistant":
                    raise RowError(key, "must be one assistant message")
                answers.append(msgs[0]["content"])
            record = _pair_record(obj, earlier, prompt, *answers)
        elif layout == "ultrafeedback":
            c_conv, c_ans = _answer(_messages(obj["chosen"], "chosen"), "chosen")
            r_conv, r_ans = _answer(_messages(obj["rejected"], "rejected"), "rejected")
            if c_conv != r_conv:
                raise RowError("rejected", "its conversation before the answer differs from chosen's")
            earlier, prompt = _split_conversation(c_conv, "chosen")
            record = _pair_record(obj, earlier, prompt, c_ans, r_ans)
            _keep_scores(obj, record, unkept)
        else:
            raise RowError("", f"unknown layout {layout!r}; layouts: {', '.join(LAYOUTS)}")
        _keep_margin(obj, record)
        known = {"prompt", "chosen", "rejected"} | _DERIVED[layout] | _PAIR_META
    if obj.get("created_at"):
        record["created_at"] = obj["created_at"]
    for key in obj:
        ours = key != "source" or obj[key] in ("ranking", "correction", "consensus")
        if key not in known or not ours:  # a public dataset's own "source" is reported
            unkept[key] = unkept.get(key, 0) + 1
    key = _to_json(
        [record.get("tutor"), record.get("messages"), record["prompt"],
         [c["text"] for c in record["candidates"]], record["ranking"], obj.get("judgment_id")]
    )  # fmt: skip
    return record, str(uuid.uuid5(ROW_NAMESPACE, key))


def _nectar(obj: dict[str, Any]) -> dict[str, Any]:
    turns = parse_transcript(obj.get("prompt"), "prompt")
    if turns[-1]["role"] == "assistant" and not turns[-1]["content"].strip():
        turns = turns[:-1]  # the open "\n\nAssistant:" at the end
    earlier, prompt = _split_conversation(turns, "prompt")
    answers = obj.get("answers")
    if not isinstance(answers, list) or not answers:
        raise RowError("answers", "is missing or not a non-empty list of {answer, model, rank}")
    n = obj.get("num_responses")
    if n is not None and n != len(answers):
        raise RowError("num_responses", f"says {n} but the row has {len(answers)} answers")
    candidates, ranking = [], []
    for i, a in enumerate(answers):
        if not isinstance(a, dict) or not isinstance(a.get("answer"), str):
            raise RowError(f"answers[{i}].answer", "is missing or not a string")
        rank = a.get("rank")
        if isinstance(rank, float) and rank.is_integer():
            rank = int(rank)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= len(answers):
            raise RowError(
                f"answers[{i}].rank",
                f"{_shown(rank)} does not fit the row's {len(answers)} answers (a rank from 1 to {len(answers)})",
            )
        candidates.append({"text": a["answer"], "model": a.get("model") or ""})
        ranking.append(rank)
    record: dict[str, Any] = {"prompt": prompt, "messages": earlier, "candidates": candidates, "ranking": ranking}
    for key in ("tutor", "domain", "rationale"):
        if obj.get(key) not in (None, ""):
            record[key] = obj[key]
    if obj.get("all_bad") is True:
        record["all_bad"] = True
    return record
