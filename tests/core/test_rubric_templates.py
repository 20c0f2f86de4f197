"""Domain rubric templates: every shipped one is a valid rubric with real criteria, a user's
edited file wins, unknown domains fall back to general, and a broken file is refused by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hitl_desktop.core.guidelines import resources_dir
from hitl_desktop.core.rubric_templates import RubricTemplates, parse_template
from hitl_desktop.core.rubrics import AXES, RubricError, check_criteria

DOMAINS = ["medicine", "finance", "law", "stem", "coding", "general"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def templates(tmp_path):
    return RubricTemplates(user_dir=tmp_path / "user")


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_shipped_template_is_a_valid_rubric_with_an_axis_per_criterion(templates, domain):
    t = templates.for_domain(domain)
    assert t is not None and t.domain == domain and t.title
    criteria = t.criteria(author="ann")
    check_criteria(criteria)
    assert 6 <= len(criteria) <= 12
    assert all(c.axis in AXES for c in criteria)
    assert any(c.points < 0 for c in criteria), "a template shows how to penalise, too"
    assert all(c.author == "ann" for c in criteria)
    assert len({c.id for c in criteria}) == len(criteria)
    # a second call gives fresh objects: editing one never changes the template
    criteria[0].text = "changed"
    assert templates.for_domain(domain).criteria()[0].text != "changed"


def test_the_version_is_the_domain_and_the_hash_of_the_file(templates, tmp_path):
    t = templates.for_domain("medicine")
    assert t.version.startswith("medicine-") and len(t.version) == len("medicine-") + 10
    # the same text elsewhere has the same version; one character more changes it
    text = t.path.read_text(encoding="utf-8")
    assert parse_template(text, tmp_path / "medicine.json").version == t.version
    assert parse_template(text + " ", tmp_path / "medicine.json").version != t.version


def test_a_users_file_wins_and_unknown_domains_use_general(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "medicine.json").write_text(json.dumps({"criteria": [
        {"criterion": "Checks eGFR before metformin", "points": 8, "tags": ["axis:accuracy"]}]}))
    lib = RubricTemplates(user_dir=user)
    t = lib.for_domain("medicine")
    assert [c.text for c in t.criteria()] == ["Checks eGFR before metformin"]
    assert t.path == user / "medicine.json"
    assert lib.for_domain("veterinary").domain == "general"
    assert lib.for_domain("../etc").domain == "general"
    assert set(DOMAINS) <= set(lib.domains())


@pytest.mark.parametrize("doc, field", [
    ("{", "not JSON"),
    (json.dumps({"criteria": {}}), "'criteria' must be a list"),
    (json.dumps({"criteria": [{"criterion": "", "points": 3}]}), "criteria[1].criterion"),
    (json.dumps({"criteria": [{"criterion": "a", "points": 0}]}), "criteria[1].points"),
    (json.dumps({"criteria": [{"criterion": "a", "points": 11}]}), "criteria[1].points"),
    (json.dumps({"criteria": [{"criterion": "a", "points": "5"}]}), "criteria[1].points"),
    (json.dumps({"criteria": [{"criterion": "a", "points": 5, "tags": "x"}]}), "criteria[1].tags"),
    (json.dumps({"criteria": [{"criterion": "a", "points": -5}]}), "positive points"),
    (json.dumps({"criteria": [{"criterion": "a", "points": 5, "tags": ["axis:style"]}]}),
     "unknown axis"),
])
def test_a_broken_template_is_refused_naming_the_file_and_field(tmp_path, doc, field):
    path = tmp_path / "x.json"
    with pytest.raises(RubricError) as e:
        parse_template(doc, path)
    assert str(path) in str(e.value) and field in str(e.value)


def test_the_templates_are_installed_with_the_package():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # tomllib is 3.11+
    assert '"share/hitl-desktop/resources/rubrics" = ["resources/rubrics/*.json"]' in pyproject
    assert {p.stem for p in (resources_dir() / "rubrics").glob("*.json")} == set(DOMAINS)
