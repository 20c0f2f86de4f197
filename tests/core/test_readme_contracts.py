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


def test_readme_command_line_block_names_only_real_commands_and_options():
    """Every command and option in the README's command-line block exists in the CLI."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Command line", 1)[1].split("```", 2)[1]
    command = cli.cli
    seen = set()
    for line in filter(str.strip, block.splitlines()):
        for part in line.split(" /   ") if "hitl-desktop" in line else [line]:
            if "hitl-desktop" in part:
                m = re.search(r"hitl-desktop\s+([a-z]+)", part)
                name = m.group(1) if m and not part.split("hitl-desktop", 1)[1].lstrip().startswith("[") else None
                assert name is None or name in cli.cli.commands, name
                command = cli.cli.commands[name] if name else cli.cli
                seen.add(name)
            options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-k)\b", part))
            have = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            assert options <= have, (command.name, options - have)
    assert seen >= {None, "import", "generate", "export", "stats", "merge", "assign", "review", "adjudicate"}


def test_data_rules_name_every_judgments_field_and_source_value():
    """docs/data-rules.md's `judgments` section names every field the format writes, and the
    README and the rules name what an import keeps of a pair row (margin, scores)."""
    from hitl_desktop.core.judgment_records import FIELDS

    rules = (ROOT / "docs/data-rules.md").read_text(encoding="utf-8")
    section = rules.split("## The `judgments` format", 1)[1].split("\n## ", 1)[0]
    assert [f for f in FIELDS if f"`{f}`" not in section] == []
    for name in ("`origin`", "`set_id`", "`tutors.pseudonymised`"):
        assert name in section
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for text in (readme, rules):
        assert "`judgments.source_values`" in text and "`score_chosen`" in text
    assert "with or without `--keep-tutor-names`" in readme
