"""The ``records`` layout (README "Import files"; CSV rows too): prompts, and judgments."""

from __future__ import annotations

from typing import Any

from hitl_desktop.core.importing.base import Layout, ParseContext
from hitl_desktop.core.importing.plan import RecordPlan
from hitl_desktop.core.importing.record import Record, parse_record
from hitl_desktop.core.layouts import RECORD_FIELDS


def _parse(obj: Any, line: int, ctx: ParseContext) -> Record:
    return parse_record(obj, line, ctx.default_domain, check_text=False)


LAYOUT = Layout("records", lambda obj: bool(obj.keys() & RECORD_FIELDS), _parse, RecordPlan)
