"""Domain rubric templates: the criteria a tutor starts a prompt's rubric from.

Shipped as ``resources/rubrics/<domain>.json`` (medicine, finance, law, stem, coding,
general), in HealthBench's item layout::

    {"domain": "medicine", "title": "...",
     "criteria": [{"criterion": "...", "points": 8, "tags": ["axis:accuracy", "safety"]}, ...]}

(``"rubrics"`` for ``"criteria"``, as HealthBench names the list, or the bare list, are read too.)

A lab edits them as plain files; a file of the same name in the user's data folder
(``<user data>/rubrics/<domain>.json``) takes precedence over the shipped one. A domain with
no template of its own uses ``general``. The version of a template is like a guideline's:
``<domain>-<first 10 hex digits of the sha256 of the file's text>``, so a rubric started from
a template can say exactly which one.

The one loader of templates: ``core.rubric_bench.RubricBench`` offers a prompt's template
through it and the rubric panel's "Start from the domain template" reads it too. A rubric
saved from a template records the template's ``version`` (``Rubric.template_version``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from hitl_desktop.core.guidelines import check_domain, resources_dir
from hitl_desktop.core.rubrics import Criterion, RubricError, check_criteria, check_points

FALLBACK = "general"


def default_user_dir() -> Path:
    return platformdirs.user_data_path("hitl-desktop", appauthor=False) / "rubrics"


@dataclass(frozen=True)
class RubricTemplate:
    domain: str  # the domain the file is for (``general`` when it stood in for another)
    title: str
    items: tuple[tuple[str, float, tuple[str, ...]], ...]  # (criterion, points, tags)
    version: str
    path: Path

    def criteria(self, *, author: str = "") -> list[Criterion]:
        """Fresh criteria (new ids) a tutor can edit; the template itself never changes."""
        return [Criterion(text=t, points=p, tags=list(tags), author=author) for t, p, tags in self.items]


def parse_template(text: str, path: Path) -> RubricTemplate:
    """A template from its file's text, or :class:`RubricError` naming the file and field."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise RubricError(f"{path}: line {e.lineno}: not JSON: {e.msg}") from None
    except RecursionError:
        raise RubricError(f"{path}: not a rubric template: nested too deeply") from None
    if isinstance(doc, list):
        doc = {"criteria": doc}
    if isinstance(doc, dict) and "criteria" not in doc and isinstance(doc.get("rubrics"), list):
        doc = {**doc, "criteria": doc["rubrics"]}
    if not isinstance(doc, dict) or not isinstance(doc.get("criteria"), list):
        raise RubricError(f"{path}: 'criteria' must be a list of {{criterion, points, tags}}")
    items = []
    for i, row in enumerate(doc["criteria"], 1):
        where = f"{path}: criteria[{i}]"
        if not isinstance(row, dict):
            raise RubricError(f"{where}: must be an object")
        crit = row.get("criterion", row.get("text"))
        if not isinstance(crit, str) or not crit.strip():
            raise RubricError(f"{where}.criterion: must be a non-empty text")
        points = check_points(row.get("points"), where=f"{where}.points")
        tags = row.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise RubricError(f"{where}.tags: must be a list of texts")
        items.append((crit.strip(), points, tuple(tags)))
    domain, title = doc.get("domain"), doc.get("title")
    template = RubricTemplate(
        domain=domain if isinstance(domain, str) and domain else path.stem,
        title=title if isinstance(title, str) else "",
        items=tuple(items),
        version=f"{path.stem}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:10]}",
        path=path,
    )
    try:
        check_criteria(template.criteria())
    except RubricError as e:
        raise RubricError(f"{path}: {e}") from None
    return template


class RubricTemplates:
    """Finds a domain's template: the user's edited file, else the shipped one, else general."""

    def __init__(self, *, shipped_dir: Path | None = None, user_dir: Path | None = None) -> None:
        self.shipped_dir = Path(shipped_dir) if shipped_dir is not None else resources_dir() / "rubrics"
        self.user_dir = Path(user_dir) if user_dir is not None else default_user_dir()

    @classmethod
    def in_folder(cls, folder: Path) -> RubricTemplates:
        """Templates from this one folder only (tests, a lab's own set)."""
        return cls(shipped_dir=Path(folder), user_dir=Path(folder))

    def path_for(self, domain: str) -> Path | None:
        try:
            name = check_domain(domain)
        except ValueError:
            name = FALLBACK
        for name_ in dict.fromkeys((name, FALLBACK)):
            for folder in dict.fromkeys((self.user_dir, self.shipped_dir)):
                path = folder / f"{name_}.json"
                if path.is_file():
                    return path
        return None

    def for_domain(self, domain: str) -> RubricTemplate | None:
        """The template for ``domain`` (None when not even ``general`` is there)."""
        path = self.path_for(domain)
        if path is None:
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RubricError(f"{path}: cannot read: {e}") from None
        return parse_template(text, path)

    def domains(self) -> list[str]:
        """The domains with a template of their own, shipped or the user's."""
        names = set()
        for folder in (self.shipped_dir, self.user_dir):
            if folder.is_dir():
                names.update(p.stem for p in folder.glob("*.json"))
        return sorted(names)
