"""The preference-pair layouts (``trl-preference``, ``trl-preference-chat``, ``hh-rlhf``,
``ultrafeedback``) and ``nectar``: each row one finished judgment (core/layouts.py turns the
row into a record), written by the records' plan."""

from __future__ import annotations

from typing import Any

from hitl_desktop.core.importing.base import Layout, ParseContext
from hitl_desktop.core.importing.plan import RecordPlan
from hitl_desktop.core.importing.record import Record, parse_record
from hitl_desktop.core.layouts import to_record


def _parser(name: str):  # noqa: ANN202
    def parse(obj: Any, line: int, ctx: ParseContext) -> Record:
        record, key = to_record(name, obj, ctx.unkept)
        rec = parse_record(record, line, ctx.default_domain, check_text=False)
        rec.judgment_key = key
        rec.source_values = record.get("source_values")
        return rec

    return parse


def _paired(obj: dict[str, Any]) -> Any:
    """The chosen (else rejected) answer of a pair row, or None when it is no pair row."""
    return obj.get("chosen", obj.get("rejected")) if ("chosen" in obj or "rejected" in obj) else None


def _is_pair(obj: dict[str, Any]) -> bool:
    return "chosen" in obj or "rejected" in obj


NECTAR = Layout("nectar", lambda obj: "answers" in obj, _parser("nectar"), RecordPlan)
TRL_PREFERENCE_CHAT = Layout(
    "trl-preference-chat",
    lambda obj: _is_pair(obj) and isinstance(_paired(obj), list) and isinstance(obj.get("prompt"), list),
    _parser("trl-preference-chat"),
    RecordPlan,
)
ULTRAFEEDBACK = Layout(
    "ultrafeedback",
    lambda obj: _is_pair(obj) and isinstance(_paired(obj), list) and not isinstance(obj.get("prompt"), list),
    _parser("ultrafeedback"),
    RecordPlan,
)
TRL_PREFERENCE = Layout(
    "trl-preference",
    lambda obj: _is_pair(obj) and not isinstance(_paired(obj), list) and "prompt" in obj,
    _parser("trl-preference"),
    RecordPlan,
)
HH_RLHF = Layout(
    "hh-rlhf",
    lambda obj: _is_pair(obj) and not isinstance(_paired(obj), list) and "prompt" not in obj,
    _parser("hh-rlhf"),
    RecordPlan,
)
