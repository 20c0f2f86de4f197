"""The README's lists of export formats and import layouts are the code's (no drift)."""

from __future__ import annotations

import re
from pathlib import Path

from hitl_desktop import cli
from hitl_desktop.core.export import FORMATS
from hitl_desktop.core.layouts import LAYOUTS

ROOT = Path(__file__).resolve().parents[2]


def _table_names(text: str, heading: str) -> list[str]:
    """The backticked names in the first column of the table under ``heading``."""
    section = text.split(heading, 1)[1]
    names = []
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            m = re.match(r"\|\s*`([^`]+)`\s*\|", line)
            if m and not m.group(1).startswith("-"):  # the header row names the option
                names.append(m.group(1))
        elif started:
            break
    return names


def test_readme_lists_every_export_format():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _table_names(text, "### Export formats") == list(FORMATS)
    assert ", ".join(FORMATS) == cli.EXPORT_FORMATS


def test_readme_and_data_rules_list_every_import_layout():
    for doc, heading in (("README.md", "#### Import layouts"), ("docs/data-rules.md", "## Import layouts")):
        text = (ROOT / doc).read_text(encoding="utf-8")
        assert _table_names(text, heading) == list(LAYOUTS), doc
    assert ", ".join(LAYOUTS) == cli.IMPORT_LAYOUTS


def test_readme_states_the_consensus_and_margin_rules():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "iff more of them put a above b than b above a" in text
    assert "margin = votes_for − votes_against" in text
    from hitl_desktop.core.ranking import consensus_margin

    assert consensus_margin(3, 1) == 3 - 1
