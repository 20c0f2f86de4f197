"""The database schema, as numbered steps (sqlite-utils ``Migrations``).

Every schema change is a new function at the end of this file, named ``mNNNN_what``; a step
that has shipped is never edited. Each step runs in one transaction with its record in
``_sqlite_migrations``, so a database is never left half-migrated.
"""

from __future__ import annotations

from hitl_desktop.core.sqlitelib import Database, Migrations

#: Written into the SQLite header (PRAGMA application_id) so that a hitl-desktop database is
#: known as one, and any other SQLite file is refused rather than modified. "HITL" in ASCII.
APPLICATION_ID = 0x4849544C

MIGRATION_SET = "hitl_desktop"

migrations = Migrations(MIGRATION_SET)


@migrations()
def m0001_initial(db: Database) -> None:
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db["tutors"].create(
        {"id": str, "name": str, "domains": str, "created_at": str},
        pk="id",
        not_null={"name", "created_at"},
        defaults={"domains": "[]"},
    )
    db["tutors"].create_index(["name"], unique=True)

    db["sessions"].create(
        {
            "id": str,
            "tutor_id": str,
            "domain": str,
            "guideline_version": str,
            "started_at": str,
            "ended_at": str,
        },
        pk="id",
        not_null={"tutor_id", "domain", "started_at"},
        foreign_keys=[("tutor_id", "tutors", "id")],
    )
    db["sessions"].create_index(["tutor_id"])

    db["prompts"].create(
        {
            "id": str,
            "text": str,
            "domain": str,
            "messages": str,  # JSON list of {role, content}: earlier turns
            "external_id": str,
            "source": str,
            "parent_judgment_id": str,
            "gold_ranking": str,  # JSON list of ranks, or NULL
            "created_at": str,
        },
        pk="id",
        not_null={"text", "domain", "created_at"},
        defaults={"messages": "[]", "source": ""},
    )
    db["prompts"].create_index(["external_id"], unique=True)
    db["prompts"].create_index(["domain"])

    db["candidates"].create(
        {
            "id": str,
            "prompt_id": str,
            "idx": int,
            "text": str,
            "model": str,
            "model_revision": str,
            "dtype": str,
            "params": str,  # JSON sampling parameters
            "seed": int,
            "tokens": int,
            "seconds": float,
            "created_at": str,
        },
        pk="id",
        not_null={"prompt_id", "text", "created_at"},
        foreign_keys=[("prompt_id", "prompts", "id")],
        defaults={"params": "{}", "model": "", "model_revision": "", "dtype": ""},
    )
    db["candidates"].create_index(["prompt_id"])

    db["judgments"].create(
        {
            "id": str,
            "prompt_id": str,
            "tutor_id": str,
            "session_id": str,
            "all_bad": int,
            "rationale": str,
            "strength": int,
            "seconds_spent": float,
            "display_order": str,  # JSON list of candidate ids as shown
            "guideline_version": str,
            "created_at": str,
        },
        pk="id",
        not_null={"prompt_id", "tutor_id", "created_at"},
        foreign_keys=[
            ("prompt_id", "prompts", "id"),
            ("tutor_id", "tutors", "id"),
            ("session_id", "sessions", "id"),
        ],
        defaults={"all_bad": 0, "rationale": "", "strength": 2, "display_order": "[]"},
    )
    db["judgments"].create_index(["prompt_id"])
    db["judgments"].create_index(["tutor_id"])
    db["judgments"].create_index(["session_id"])
    db["judgments"].create_index(["created_at"])

    db["rankings"].create(
        {
            "judgment_id": str,
            "candidate_id": str,
            "rank": int,
            "flags": str,  # JSON list of flag names
            "ratings": str,  # JSON {scale: 1..5}
        },
        pk=("judgment_id", "candidate_id"),
        not_null={"rank"},
        foreign_keys=[("judgment_id", "judgments", "id"), ("candidate_id", "candidates", "id")],
        defaults={"flags": "[]", "ratings": "{}"},
    )
    db["rankings"].create_index(["candidate_id"])

    db["corrections"].create(
        {
            "id": str,
            "judgment_id": str,
            "candidate_id": str,
            "text": str,
            "created_at": str,
        },
        pk="id",
        not_null={"judgment_id", "text", "created_at"},
        foreign_keys=[("judgment_id", "judgments", "id"), ("candidate_id", "candidates", "id")],
    )
    db["corrections"].create_index(["judgment_id"], unique=True)


@migrations()
def m0002_settings(db: Database) -> None:
    """Per-database settings; the salt that pseudonymises tutor names on export."""
    import secrets

    db["settings"].create({"key": str, "value": str}, pk="key")
    db["settings"].insert({"key": "pseudonym_salt", "value": secrets.token_hex(16)})


def gold_rows_from_positions(db: Database) -> list[dict[str, object]]:
    """Gold ranks stored by position (``prompts.gold_ranking``, version 0.1) as rows of
    ``gold_rankings``: the n-th rank goes to the prompt's n-th candidate in idx order. Ranks
    beyond the prompt's candidates, or that are not positive integers, are dropped."""
    import json

    rows: list[dict[str, object]] = []
    gold = db.execute(
        "select id, gold_ranking from prompts where gold_ranking is not null and gold_ranking != ''"
    ).fetchall()
    for pid, text in gold:
        try:
            ranks = json.loads(text)
        except ValueError:
            continue
        if not isinstance(ranks, list):
            continue
        cands = [
            r[0]
            for r in db.execute(
                "select id from candidates where prompt_id = ? order by idx, created_at, rowid", [pid]
            )
        ]
        for cid, rank in zip(cands, ranks):
            if isinstance(rank, int) and not isinstance(rank, bool) and rank >= 1:
                rows.append({"prompt_id": pid, "candidate_id": cid, "rank": rank})
    return rows


@migrations()
def m0003_gold_rankings(db: Database) -> None:
    """Gold ranks against candidate ids, never positions: a regenerated or reordered
    candidate can no longer take over the gold rank of the text it replaced."""
    db["gold_rankings"].create(
        {"prompt_id": str, "candidate_id": str, "rank": int},
        pk=("prompt_id", "candidate_id"),
        not_null={"rank"},
        foreign_keys=[("prompt_id", "prompts", "id"), ("candidate_id", "candidates", "id")],
    )
    db["gold_rankings"].create_index(["candidate_id"])
    rows = gold_rows_from_positions(db)
    if rows:
        db["gold_rankings"].insert_all(rows)
    db.execute("update prompts set gold_ranking = null where gold_ranking is not null")
@migrations()
def m0004_lab(db: Database) -> None:
    """The lab: where each candidate came from, re-judged versions, guidelines in the database.

    - ``candidates.origin``: ``imported`` (came with a prompt in a file), ``pack`` (came in a
      lab's work pack) or ``generated`` (written here by a model). Candidates that came with
      a prompt are never deleted or replaced by regenerate. Existing rows: a candidate with a
      seed was generated here, the others came with their prompt.
    - ``candidates.set_id``: NULL for the prompt's own candidate set; a new id for each further
      set written on the tutor's explicit request (regenerating a protected item).
    - ``judgments.supersedes``: the judgment this one re-judges (edit of a past judgment); the
      old one is kept for audit and counts nowhere else.
    - ``guidelines``: every version of a domain's guidelines a judgment here was made under,
      so that ``judgments.guideline_version`` resolves in this database (and in a merge).
    """
    db["candidates"].add_column("origin", str, not_null_default="imported")
    db["candidates"].add_column("set_id", str)
    db.execute("update candidates set origin = 'generated' where seed is not null")
    db["candidates"].create_index(["prompt_id", "set_id"])
    db["judgments"].add_column("supersedes", str)
    db["judgments"].create_index(["supersedes"])
    db["guidelines"].create(
        {"domain": str, "version": str, "text": str, "created_at": str},
        pk=("domain", "version"),
        not_null={"text", "created_at"},
    )


@migrations()
def m0005_adjudications(db: Database) -> None:
    """A lead's adjudicated rankings (core/review.py). Rows are never updated or deleted: a new
    adjudication of a prompt supersedes the earlier ones (the latest ``created_at`` is current)."""
    db["adjudications"].create(
        {
            "id": str,
            "prompt_id": str,
            "ranking": str,  # JSON {candidate id: rank}
            "rationale": str,
            "adjudicator": str,  # the lead's name
            "created_at": str,
        },
        pk="id",
        not_null={"prompt_id", "ranking", "rationale", "adjudicator", "created_at"},
        foreign_keys=[("prompt_id", "prompts", "id")],
    )
    db["adjudications"].create_index(["prompt_id", "created_at"])


@migrations()
def m0006_source_values(db: Database) -> None:
    """Fidelity of imported data (README "Dataset rules", docs/data-rules.md).

    - ``judgments.source_values``: JSON, what an imported row said that its ranking cannot
      carry, written back on export: ``{"margin": float}`` (a pair row's margin) and
      ``{"scores": {candidate id: float}}`` (UltraFeedback's ``score_chosen`` /
      ``score_rejected``). NULL for judgments made here.
    - ``tutors.pseudonymised``: 1 for a tutor whose name is already a pseudonym (imported from
      a pseudonymised ``judgments`` export): an export writes it as it is, never pseudonymised
      twice, so the default round trip keeps every pseudonym.
    """
    db["judgments"].add_column("source_values", str)
    db["tutors"].add_column("pseudonymised", int, not_null_default=0)


@migrations()
def m0007_rubrics(db: Database) -> None:
    """Rubrics (core/rubric_store.py, DESIGN.md 6b): criteria, their versions, and grades.

    - ``rubrics``: one row per version of a prompt's rubric (versions count from 1 per prompt,
      whoever wrote them); ``status`` ``proposed`` (a tutor's) or ``approved`` (a lab rubric:
      the one with the latest ``approved_at`` is the prompt's lab rubric). Rows are never
      deleted; approving sets the three ``approved`` columns of that version only.
    - ``criteria``: immutable, one row per criterion of one version. A new version copies its
      criteria with new ids; ``key`` is stable across versions (the id the criterion had in the
      first version it appeared in), so a grade can be followed from one version to the next.
    - ``grades``: one per (candidate, criterion, grader); a tutor's carries the ``judgment_id``
      it was submitted with (deleted with it on undo); a model's carries ``run_id``, a row of
      ``grader_runs`` (model, parameters, grader prompt version).
    - ``prompts.rubric_meta``: JSON, what a rubrics file (HealthBench's layout) said of the prompt
      that has no other place, written back on export: ``example_tags`` and
      ``ideal_completions_data`` as given. NULL for prompts from elsewhere.
    - ``judgments.departs_from_scores``: 1 when a graded judgment's ranking departs from the
      scores, 0 when it follows them, NULL for a judgment without grades.
    """
    db["rubrics"].create(
        {
            "id": str,
            "prompt_id": str,
            "version": int,
            "author": str,
            "created_at": str,
            "status": str,
            "approved_by": str,
            "approved_at": str,
        },
        pk="id",
        not_null={"prompt_id", "version", "created_at", "status"},
        foreign_keys=[("prompt_id", "prompts", "id")],
        defaults={"author": "", "status": "proposed"},
    )
    db["rubrics"].create_index(["prompt_id", "version"], unique=True)
    db["rubrics"].create_index(["prompt_id", "author"])
    db["criteria"].create(
        {
            "id": str,
            "rubric_id": str,
            "key": str,
            "position": int,
            "text": str,
            "points": float,
            "tags": str,  # JSON list of tags
            "author": str,
            "created_at": str,
        },
        pk="id",
        not_null={"rubric_id", "key", "position", "text", "points", "created_at"},
        foreign_keys=[("rubric_id", "rubrics", "id")],
        defaults={"tags": "[]", "author": ""},
    )
    db["criteria"].create_index(["rubric_id", "position"])
    db["criteria"].create_index(["key"])
    db["grader_runs"].create(
        {
            "id": str,
            "grader": str,
            "model": str,
            "parameters": str,  # JSON
            "prompt_version": str,
            "created_at": str,
        },
        pk="id",
        not_null={"grader", "created_at"},
        defaults={"parameters": "{}", "model": "", "prompt_version": ""},
    )
    db["grades"].create(
        {
            "id": str,
            "candidate_id": str,
            "criterion_id": str,
            "rubric_id": str,
            "grader": str,
            "grader_kind": str,
            "met": int,
            "note": str,
            "judgment_id": str,
            "run_id": str,
            "created_at": str,
        },
        pk="id",
        not_null={"candidate_id", "criterion_id", "rubric_id", "grader", "grader_kind", "met", "created_at"},
        foreign_keys=[
            ("candidate_id", "candidates", "id"),
            ("criterion_id", "criteria", "id"),
            ("rubric_id", "rubrics", "id"),
            ("run_id", "grader_runs", "id"),
        ],
        defaults={"note": "", "grader_kind": "tutor"},
    )
    db["grades"].create_index(["candidate_id", "criterion_id", "grader"])
    db["grades"].create_index(["criterion_id"])
    db["grades"].create_index(["rubric_id"])
    db["grades"].create_index(["judgment_id"])
    db["grades"].create_index(["grader", "grader_kind"])
    db["judgments"].add_column("departs_from_scores", int)
    db["prompts"].add_column("rubric_meta", str)


@migrations()
def m0008_rubric_templates(db: Database) -> None:
    """``rubrics.template_version``: the domain template (``<domain>-<hash>``, see
    core/rubric_templates.py) a rubric version started from; "" when written from scratch."""
    db["rubrics"].add_column("template_version", str, not_null_default="")


@migrations()
def m0009_leaner_indexes(db: Database) -> None:
    """Fewer B-trees to write per row, the same lookups (issue 18: an import writes each row
    into every index of its table):

    * ``idx_candidates_prompt_id`` goes: ``idx_candidates_prompt_id_set_id`` starts with the
      same column and serves every lookup by prompt;
    * the judgments' ``session_id`` and ``supersedes`` indexes hold only the rows that have
      one (partial indexes: most judgments have neither, and every lookup is ``= ?``, which
      SQLite answers from a partial index ``... is not null``).

    Measured on an import of 100,000 judgments, old and new code run alternately: 5.3-5.5 s
    writing rows against 5.7-6.5 s, a file of 242 MB against 254 MB. Nothing is copied: the
    step reads the judgments once per partial index and writes only their non-null values."""
    db.execute("drop index if exists idx_candidates_prompt_id")
    for column in ("session_id", "supersedes"):
        db.execute(f"drop index if exists idx_judgments_{column}")
        db.execute(f"create index idx_judgments_{column} on judgments ({column}) where {column} is not null")

