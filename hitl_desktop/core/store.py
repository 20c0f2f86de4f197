"""The store: the only place in hitl-desktop that speaks SQL.

A ``Store`` wraps a ``sqlite_utils.Database``. Every user action is one transaction
(``db.atomic()``); the database runs in WAL mode with ``synchronous=FULL`` so that an
acknowledged write survives a crash or a power cut. A file that is not a hitl-desktop
database is refused before anything is written to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from hitl_desktop.core import backup
from hitl_desktop.core.dbfile import (  # noqa: F401  (re-exported: store.StoreError etc.)
    BUSY_MESSAGE,
    BUSY_TIMEOUT_MS,
    SQLITE_HEADER,
    BusyAwareConnection,
    DatabaseBusy,
    NotAHitlDatabase,
    StoreError,
    _is_busy,
    check_database_file,
    default_db_path,
)
from hitl_desktop.core.migrations import APPLICATION_ID, gold_rows_from_positions, migrations
from hitl_desktop.core.rubric_store import RUBRIC_TABLES, RubricStore
from hitl_desktop.core.sqlitelib import Database, database
from hitl_desktop.core.types import (
    Adjudication,
    Candidate,
    Correction,
    JudgedItem,
    Judgment,
    Message,
    Prompt,
    Session,
    Tutor,
    now_iso,
)

_EMPTY_JSON = {"[]": list, "{}": dict}


def _loads(value: str | None, default: Any) -> Any:
    if value is None or value == "":
        return default
    empty = _EMPTY_JSON.get(value)  # most flags, ratings and params are empty: skip the parser
    if empty is not None:
        return empty()
    return json.loads(value)


def _dumps(value: Any) -> str:
    if not value and type(value) in (list, dict):  # most flags, ratings, params: no encoder
        return "[]" if type(value) is list else "{}"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# Column lists for reading: rows are fetched as plain tuples in this order (by position is
# several times cheaper than by name, and an export reads every candidate of every prompt).
_PROMPT_COLUMNS = "id, text, domain, messages, external_id, source, parent_judgment_id, gold_ranking, created_at"
_CANDIDATE_COLUMNS = "id, prompt_id, idx, text, model, model_revision, dtype, params, seed, tokens, seconds, created_at"
#: SQL condition on a judgment ``j``: not re-judged (no other judgment supersedes it).
_CURRENT_JUDGMENT = "not exists (select 1 from judgments sj where sj.supersedes = j.id)"
#: Where a candidate came from (``candidates.origin``); all but ``generated`` are protected.
ORIGINS = ("imported", "pack", "generated")
_CHUNK = 500  # ids per "in (...)" query: well under SQLite's limit on bound variables


def _prefixed(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


_TUTOR_COLUMNS = "id, name, domains, created_at"


def _row_to_tutor(row: Sequence[Any]) -> Tutor:
    tid, name, domains, created_at = row
    return Tutor(id=tid, name=name, domains=_loads(domains, []), created_at=created_at)


def _row_to_prompt(row: Sequence[Any]) -> Prompt:
    """A Prompt from a row selected as ``_PROMPT_COLUMNS``."""
    pid, text, domain, messages, external_id, source, parent, gold, created_at = row
    return Prompt(
        id=pid,
        text=text,
        domain=domain,
        messages=[Message(m["role"], m["content"]) for m in _loads(messages, [])],
        external_id=external_id,
        source=source or "",
        parent_judgment_id=parent,
        gold_ranking=None,  # the gold_rankings table, by candidate id (Store._with_gold)
        created_at=created_at,
    )


def _prompt_to_row(p: Prompt) -> dict[str, Any]:
    return {
        "id": p.id,
        "text": p.text,
        "domain": p.domain,
        "messages": _dumps([m.to_dict() for m in p.messages]),
        "external_id": p.external_id,
        "source": p.source,
        "parent_judgment_id": p.parent_judgment_id,
        "gold_ranking": None,  # gold ranks live in gold_rankings (m0003), by candidate id
        "created_at": p.created_at,
    }


def _row_to_candidate(row: Sequence[Any]) -> Candidate:
    """A Candidate from a row selected as ``_CANDIDATE_COLUMNS``."""
    cid, prompt_id, idx, text, model, revision, dtype, params, seed, tokens, seconds, created_at = row
    return Candidate(
        id=cid,
        prompt_id=prompt_id,
        index=idx or 0,
        text=text,
        model=model or "",
        model_revision=revision or "",
        dtype=dtype or "",
        params=_loads(params, {}),
        seed=seed,
        tokens=tokens,
        seconds=seconds,
        created_at=created_at,
    )


def _candidate_to_row(c: Candidate) -> dict[str, Any]:
    return {
        "id": c.id,
        "prompt_id": c.prompt_id,
        "idx": c.index,
        "text": c.text,
        "model": c.model,
        "model_revision": c.model_revision,
        "dtype": c.dtype,
        "params": _dumps(c.params),
        "seed": c.seed,
        "tokens": c.tokens,
        "seconds": c.seconds,
        "created_at": c.created_at,
    }


def _gold_rows(prompt_id: str, ranks: dict[str, int]) -> list[dict[str, Any]]:
    return [{"prompt_id": prompt_id, "candidate_id": c, "rank": r} for c, r in ranks.items()]


def _judgment_rows(j: Judgment) -> tuple[dict[str, Any], list[dict[str, Any]], dict | None]:
    judgment = {
        "id": j.id,
        "prompt_id": j.prompt_id,
        "tutor_id": j.tutor_id,
        "session_id": j.session_id,
        "all_bad": int(j.all_bad),
        "rationale": j.rationale,
        "strength": j.strength,
        "seconds_spent": j.seconds_spent,
        "display_order": _dumps(j.display_order),
        "guideline_version": j.guideline_version,
        "created_at": j.created_at,
    }
    # every row names the same columns: a bulk insert takes them from its first row
    judgment["supersedes"] = j.supersedes
    judgment["source_values"] = _dumps(j.source_values) if j.source_values else None
    rankings = [
        {
            "judgment_id": j.id,
            "candidate_id": cid,
            "rank": rank,
            "flags": _dumps(j.flags.get(cid, [])),
            "ratings": _dumps(j.ratings.get(cid, {})),
        }
        for cid, rank in j.ranks.items()
    ]
    correction = None
    if j.correction is not None:
        c = j.correction
        correction = {
            "id": c.id,
            "judgment_id": j.id,
            "candidate_id": c.candidate_id,
            "text": c.text,
            "created_at": c.created_at,
        }
    return judgment, rankings, correction


def _read_only_file(p: Path) -> bool:
    """Whether the file or its folder is read-only by its permission bits (or for us)."""
    folder = p.resolve().parent
    try:
        no_write = (p.stat().st_mode & 0o222) == 0 or (folder.stat().st_mode & 0o222) == 0
    except OSError:
        return False
    return no_write or not os.access(p, os.W_OK) or not os.access(folder, os.W_OK)


class Store:
    """hitl-desktop's database. Create with ``Store.open(path)`` or ``Store.memory()``.

    A Store belongs to the thread that opened it (SQLite connections are per thread).
    """

    def __init__(self, db: Database, path: Path | None) -> None:
        self.db = db
        self.path = path
        self._lab: bool | None = None
        self._m0006: bool | None = None

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, *, create: bool = True, read_only: bool = False
    ) -> Store:
        """Open (and migrate) the database at ``path``; the default database when None.

        For work: the integrity check, the backup on open (policy in ``core/backup.py``) and
        pending migrations. With ``read_only`` (``stats``, ``export``): none of these; nothing
        is written, and a read-only file or folder is fine (see ``open_readonly``).
        Raises ``NotAHitlDatabase`` for a file of another kind, leaving it unmodified.
        """
        p = Path(path) if path is not None else default_db_path()
        if read_only:
            if not p.exists():
                raise StoreError(f"{p}: no such database")
            store = cls.open_readonly(p)
            try:
                backup.check_integrity(store, for_work=False)  # a damaged file names its backup
            except BaseException:
                store.close()
                raise
            return store
        exists = check_database_file(p)
        if not exists and not create:
            raise StoreError(f"{p}: no such database")
        if not exists:
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"{p.parent}: cannot create folder ({e.strerror})") from e
        try:
            conn = sqlite3.connect(
                str(p), timeout=BUSY_TIMEOUT_MS / 1000, factory=BusyAwareConnection
            )
        except sqlite3.Error as e:
            raise StoreError(f"{p}: cannot open database ({e})") from e
        store = cls(database(conn), p)
        try:
            if exists:
                store._check_integrity()  # reliability: CorruptDatabase, file untouched
            store._configure(wal=True)
            store._check_version()
            if exists:
                store._backup_before_use()  # reliability: "migrate" / "open" backups
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def memory(cls) -> Store:
        """A fresh in-memory database (tests, scratch work)."""
        store = cls(database(sqlite3.connect(":memory:")), None)
        store._configure(wal=False)
        store._migrate()
        return store

    def _configure(self, *, wal: bool) -> None:
        ex = self.db.conn.execute
        try:
            ex(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            ex("PRAGMA foreign_keys = ON")
            if wal:
                mode = ex("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            ex("PRAGMA synchronous = FULL")
            ex("PRAGMA cache_size = -65536")  # 64 MiB: bulk imports and merges touch many pages
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: {e}") from e

    def _check_version(self) -> None:
        applied = {m.name for m in migrations.applied(self.db)}
        known = {m.name for m in migrations._migrations}
        newer = sorted(applied - known)
        if newer:
            raise NotAHitlDatabase(
                f"{self.path}: was written by a newer hitl-desktop (schema steps {', '.join(newer)}); "
                "update hitl-desktop to open it"
            )

    def _migrate(self) -> None:
        if migrations.pending(self.db):
            migrations.apply(self.db)

    def _has_lab_schema(self) -> bool:
        """Whether step m0004 (re-judged versions, candidate origins) is applied: a database
        opened read-only is not migrated, and reads of an older one go without them."""
        if self._lab is None:
            self._lab = "supersedes" in {c.name for c in self.db["judgments"].columns}
        return self._lab

    def _has_source_values(self) -> bool:
        """Whether step m0006 (judgments.source_values, tutors.pseudonymised) is applied."""
        if self._m0006 is None:
            self._m0006 = "source_values" in {c.name for c in self.db["judgments"].columns}
        return self._m0006

    @property
    def rubrics(self) -> RubricStore:
        """Rubrics, criteria and grades (core/rubric_store.py)."""
        return RubricStore(self.db)

    def schema_version(self) -> list[str]:
        return [m.name for m in migrations.applied(self.db)]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """Several store calls as ONE transaction (a user action): all of them, or none."""
        with self.db.atomic():
            yield self

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tutors and sessions ---------------------------------------------------------------

    def ensure_tutor(self, name: str, domains: Sequence[str] | None = None) -> Tutor:
        """The tutor of that name, created when new; ``domains`` updates their domains."""
        name = name.strip()
        if not name:
            raise StoreError("a tutor needs a name")
        with self.db.atomic():
            tutor = self.tutor_by_name(name)
            if tutor is None:
                tutor = Tutor(name=name, domains=list(domains or []))
                self.db["tutors"].insert(
                    {
                        "id": tutor.id,
                        "name": tutor.name,
                        "domains": _dumps(tutor.domains),
                        "created_at": tutor.created_at,
                    }
                )
            elif domains is not None and list(domains) != tutor.domains:
                tutor.domains = list(domains)
                self.db["tutors"].update(tutor.id, {"domains": _dumps(tutor.domains)})
        return tutor

    def tutor_by_name(self, name: str) -> Tutor | None:
        row = self.db.execute(f"select {_TUTOR_COLUMNS} from tutors where name = ?", [name]).fetchone()
        return None if row is None else _row_to_tutor(row)

    def tutors(self) -> list[Tutor]:
        return [_row_to_tutor(r) for r in self.db.execute(f"select {_TUTOR_COLUMNS} from tutors order by name")]

    def start_session(self, *, tutor_id: str, domain: str, guideline_version: str = "") -> Session:
        session = Session(tutor_id=tutor_id, domain=domain, guideline_version=guideline_version)
        with self.db.atomic():
            self.db["sessions"].insert(
                {
                    "id": session.id,
                    "tutor_id": session.tutor_id,
                    "domain": session.domain,
                    "guideline_version": session.guideline_version,
                    "started_at": session.started_at,
                    "ended_at": None,
                }
            )
        return session

    def end_session(self, session_id: str) -> None:
        with self.db.atomic():
            self.db["sessions"].update(session_id, {"ended_at": now_iso()})

    def session_summary(self, session_id: str) -> dict[str, Any]:
        """Items done, time per item and pairs produced in one session."""
        from hitl_desktop.core.ranking import pairs_for_item

        items = list(self.judged_items(session_id=session_id))
        times = [i.judgment.seconds_spent for i in items if i.judgment.seconds_spent is not None]
        return {
            "session_id": session_id,
            "items": len(items),
            "seconds_per_item": (sum(times) / len(times)) if times else None,
            "pairs": sum(len(pairs_for_item(i)) for i in items),
            "corrections": sum(1 for i in items if i.judgment.correction is not None),
        }

    # -- prompts and candidates ------------------------------------------------------------

    def add_prompt(self, prompt: Prompt) -> Prompt:
        with self.db.atomic():
            self.db["prompts"].insert(_prompt_to_row(prompt))
        return prompt

    def get_prompt(self, prompt_id: str) -> Prompt:
        row = self.db.execute(f"select {_PROMPT_COLUMNS} from prompts where id = ?", [prompt_id]).fetchone()
        if row is None:
            raise StoreError(f"no prompt {prompt_id}")
        return self._with_gold([_row_to_prompt(row)])[0]

    # -- gold items: reference ranks against candidate ids (table gold_rankings) ------------

    def _with_gold(self, prompts: list[Prompt]) -> list[Prompt]:
        """Fill each prompt's ``gold_ranking`` (candidate id -> rank) from gold_rankings."""
        gold = self.gold_rankings(p.id for p in prompts)
        for p in prompts:
            p.gold_ranking = gold.get(p.id)
        return prompts

    def gold_rankings(self, prompt_ids: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
        """prompt id -> {candidate id: gold rank}, for the given prompts (default: all)."""
        out: dict[str, dict[str, int]] = defaultdict(dict)
        rows: Iterable[tuple]
        if not self.has_table("gold_rankings"):
            # a database from before m0003 opened read-only (not migrated): its gold by position
            wanted = None if prompt_ids is None else set(prompt_ids)
            rows = [
                (r["prompt_id"], r["candidate_id"], r["rank"])
                for r in gold_rows_from_positions(self.db)
                if wanted is None or r["prompt_id"] in wanted
            ]
        elif prompt_ids is None:
            rows = self.db.conn.execute(
                "select prompt_id, candidate_id, rank from gold_rankings"
            )
        else:
            rows = self._rows_in(
                "select prompt_id, candidate_id, rank from gold_rankings where prompt_id in ({marks})",
                prompt_ids,
            )
        for pid, cid, rank in rows:
            out[pid][cid] = rank
        return dict(out)

    def set_gold_ranking(self, prompt_id: str, ranks: dict[str, int]) -> None:
        """Make a prompt a gold item: its reference rank per candidate id (one transaction)."""
        with self.db.atomic():
            self.db.execute("delete from gold_rankings where prompt_id = ?", [prompt_id])
            self._insert_many("gold_rankings", _gold_rows(prompt_id, ranks))

    def _rows_in(self, sql: str, ids: Iterable[Any]) -> Iterator[tuple]:
        """The rows of ``sql`` (holding one ``in ({marks})``) for all ``ids``, a chunk at a time."""
        wanted = list(ids)
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            yield from self.db.conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def prompt_ids_by_external_id(self, external_ids: Iterable[str]) -> dict[str, str]:
        """external id -> prompt id, for those that exist."""
        return dict(
            self._rows_in("select external_id, id from prompts where external_id in ({marks})", external_ids)
        )

    def prompts_by_external_id(self, external_ids: Iterable[str]) -> dict[str, Prompt]:
        """external id -> prompt (with its gold ranks), for those that exist."""
        found = list(
            map(
                _row_to_prompt,
                self._rows_in(f"select {_PROMPT_COLUMNS} from prompts where external_id in ({{marks}})", external_ids),
            )
        )
        return {p.external_id: p for p in self._with_gold(found)}

    def all_prompts(self, *, domain: str | None = None) -> list[Prompt]:
        """Every prompt (of ``domain``), oldest first."""
        where, args = ("where domain = ?", [domain]) if domain else ("", [])
        return [
            _row_to_prompt(r)
            for r in self.db.execute(f"select {_PROMPT_COLUMNS} from prompts {where} order by created_at, rowid", args)
        ]

    def gold_prompt_ids(self) -> set[str]:
        """Prompts with a gold answer key (``prompts.gold_ranking``, or rows of a
        ``gold_rankings`` table where the schema has one)."""
        ids = {r[0] for r in self.db.execute("select id from prompts where gold_ranking is not null")}
        if self.db["gold_rankings"].exists():
            ids |= {r[0] for r in self.db.execute("select distinct prompt_id from gold_rankings")}
        return ids

    def vacuum(self) -> None:
        """Rewrite the file: no freed page keeps deleted data."""
        self.db.execute("VACUUM")

    def judging_tutor_ids(self, prompt_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(prompt id, tutor id) for every judgment of the given prompts."""
        return set(
            self._rows_in("select distinct prompt_id, tutor_id from judgments where prompt_id in ({marks})", prompt_ids)
        )

    def queued_prompts(
        self,
        *,
        domain: str | None = None,
        tutor_id: str | None = None,
        without_candidates: bool = False,
        limit: int | None = None,
    ) -> list[Prompt]:
        """Prompts waiting for work, oldest first.

        With ``tutor_id``: those this tutor has not judged yet. With ``without_candidates``:
        those that have no candidate yet (for pre-generation).
        """
        where, args = [], []
        if domain:
            where.append("p.domain = ?")
            args.append(domain)
        if tutor_id:
            where.append(
                "not exists (select 1 from judgments j where j.prompt_id = p.id and j.tutor_id = ?)"
            )
            args.append(tutor_id)
        else:
            where.append("not exists (select 1 from judgments j where j.prompt_id = p.id)")
        if without_candidates:
            where.append("not exists (select 1 from candidates c where c.prompt_id = p.id)")
        sql = (
            f"select {_prefixed(_PROMPT_COLUMNS, 'p')} from prompts p where "
            + " and ".join(where)
            + " order by p.created_at, p.rowid"
        )
        if limit is not None:
            sql += f" limit {int(limit)}"
        return [_row_to_prompt(r) for r in self.db.execute(sql, args)]

    def add_candidates(
        self, candidates: Sequence[Candidate], *, origin: str = "generated", set_id: str | None = None
    ) -> None:
        """Save candidates written here (``origin`` generated) or brought in (imported, pack);
        ``set_id`` None: the prompt's own set, else a further set (see ``m0004_lab``)."""
        if origin not in ORIGINS:
            raise StoreError(f"origin: {origin!r} is not one of {', '.join(ORIGINS)}")
        with self.db.atomic():
            self.db["candidates"].insert_all(
                {**_candidate_to_row(c), "origin": origin, "set_id": set_id} for c in candidates
            )

    def replace_candidate(self, old_id: str, new: Candidate) -> None:
        """Swap an unjudged generated candidate for a regenerated one, in one transaction (the
        new one joins the old one's set). A candidate that came with its prompt is protected."""
        with self.db.atomic():
            if self.db.execute("select 1 from rankings where candidate_id = ?", [old_id]).fetchone():
                raise StoreError("a judged candidate cannot be replaced")
            row = self.db.execute("select origin, set_id from candidates where id = ?", [old_id]).fetchone()
            if row is None:
                raise StoreError(f"no candidate {old_id}")
            if row[0] != "generated":
                raise StoreError(f"this candidate came with its prompt ({row[0]}); it is never replaced")
            self.db["candidates"].delete(old_id)
            self.db["candidates"].insert({**_candidate_to_row(new), "origin": "generated", "set_id": row[1]})

    def delete_unjudged_candidates(self, prompt_id: str) -> int:
        """Remove a prompt's generated candidates that no judgment refers to (before
        regenerating all). Candidates that came with the prompt are never deleted."""
        with self.db.atomic():
            cur = self.db.execute(
                "delete from candidates where prompt_id = ? and origin = 'generated' and id not in "
                "(select candidate_id from rankings) and id not in "
                "(select candidate_id from corrections where candidate_id is not null)",
                [prompt_id],
            )
            return cur.rowcount

    def candidate_origins(self, prompt_id: str) -> dict[str, tuple[str, str | None]]:
        """candidate id -> (origin, set id) for one prompt's candidates."""
        return {
            cid: (origin, set_id)
            for cid, origin, set_id in self.db.execute(
                "select id, origin, set_id from candidates where prompt_id = ?", [prompt_id]
            )
        }

    def origins_by_candidate(self, candidate_ids: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """candidate id -> (origin, set id) for these candidates (a database from before step
        m0004, read without migration: as that step would set them)."""
        cols = "origin, set_id" if self._has_lab_schema() else (
            "case when seed is null then 'imported' else 'generated' end, null")  # fmt: skip
        sql = f"select id, {cols} from candidates where id in ({{marks}})"
        return {cid: (o, sid) for cid, o, sid in self._rows_in(sql, candidate_ids)}

    def current_candidates(self, prompt_id: str) -> list[Candidate]:
        """The candidate set on the bench: the newest further set when there is one, else the
        prompt's own candidates."""
        row = self.db.execute(
            "select set_id from candidates where prompt_id = ? and set_id is not null "
            "order by rowid desc limit 1",
            [prompt_id],
        ).fetchone()
        where = "set_id = ?" if row else "set_id is null"
        args = [prompt_id, row[0]] if row else [prompt_id]
        return [
            _row_to_candidate(r)
            for r in self.db.execute(
                f"select {_CANDIDATE_COLUMNS} from candidates where prompt_id = ? and {where} "
                "order by idx, created_at",
                args,
            )
        ]

    def set_candidate_origin(self, origin: str) -> None:
        """Mark every candidate in this database as ``origin`` (a pack's, once it is built)."""
        if origin not in ORIGINS:
            raise StoreError(f"origin: {origin!r} is not one of {', '.join(ORIGINS)}")
        with self.db.atomic():
            self.db.execute("update candidates set origin = ?", [origin])

    # -- guidelines kept in the database ----------------------------------------------------

    def save_guideline_version(self, *, domain: str, version: str, text: str) -> bool:
        """Keep this version of a domain's guidelines here (once); True when it was new."""
        with self.db.atomic():
            cur = self.db.execute(
                "insert or ignore into guidelines (domain, version, text, created_at) values (?, ?, ?, ?)",
                [domain, version, text, now_iso()],
            )
            return cur.rowcount == 1

    def guideline_text(self, domain: str, version: str | None = None) -> tuple[str, str] | None:
        """(version, text) of that version of a domain's guidelines, or of the newest kept here."""
        if version is not None:
            row = self.db.execute(
                "select version, text from guidelines where domain = ? and version = ?", [domain, version]
            ).fetchone()
        else:
            row = self.db.execute(
                "select version, text from guidelines where domain = ? order by created_at desc, rowid desc limit 1",
                [domain],
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def guideline_rows(self, domains: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every guideline version kept here (of ``domains`` when given), oldest first."""
        rows = [
            dict(zip(("domain", "version", "text", "created_at"), r, strict=True))
            for r in self.db.execute(
                "select domain, version, text, created_at from guidelines order by created_at, rowid"
            )
        ]
        wanted = None if domains is None else set(domains)
        return [r for r in rows if wanted is None or r["domain"] in wanted]

    def candidates_for(self, prompt_id: str) -> list[Candidate]:
        return [
            _row_to_candidate(r)
            for r in self.db.execute(
                f"select {_CANDIDATE_COLUMNS} from candidates where prompt_id = ? order by idx, created_at",
                [prompt_id],
            )
        ]

    # -- judgments -------------------------------------------------------------------------

    def save_judgment(self, judgment: Judgment) -> Judgment:
        """Save a judgment with its ranks, flags, ratings and correction: one transaction.

        A correction equal (after trimming) to the candidate it corrects is not stored; the
        judgment returned is the one saved."""
        from hitl_desktop.core.ranking import validate_judgment, without_unchanged_correction

        candidates = self.candidates_for(judgment.prompt_id)
        validate_judgment(judgment, [c.id for c in candidates])
        judgment = without_unchanged_correction(judgment, candidates)
        jrow, rrows, crow = _judgment_rows(judgment)
        try:
            with self.db.atomic():
                self.db["judgments"].insert(jrow)
                self.db["rankings"].insert_all(rrows)
                if crow is not None:
                    self.db["corrections"].insert(crow)
        except sqlite3.IntegrityError as e:
            raise StoreError(f"judgment not saved: {e}") from e
        return judgment

    def delete_judgment(self, judgment_id: str) -> None:
        """Take a judgment back (undo), with its ranks and correction: one transaction."""
        with self.db.atomic():
            if self.db.execute(
                "select 1 from prompts where parent_judgment_id = ?", [judgment_id]
            ).fetchone():
                raise StoreError("this judgment has a continued conversation; it cannot be undone")
            self.db.execute("delete from corrections where judgment_id = ?", [judgment_id])
            self.rubrics.delete_judgment_grades(judgment_id)  # rubcore: its grades go with it
            self.db.execute("delete from rankings where judgment_id = ?", [judgment_id])
            self.db.execute("delete from judgments where id = ?", [judgment_id])

    def superseding_judgment(self, judgment_id: str) -> str | None:
        """The id of the judgment that re-judged this one, if any."""
        row = self.db.execute("select id from judgments where supersedes = ?", [judgment_id]).fetchone()
        return None if row is None else row[0]

    def judgments_for(self, prompt_id: str) -> list[Judgment]:
        return [item.judgment for item in self.judged_items(prompt_id=prompt_id)]

    def bulk_insert(
        self,
        *,
        tutors: Sequence[Tutor] = (),
        sessions: Sequence[Session] = (),
        prompts: Sequence[Prompt] = (),
        candidates: Sequence[Candidate] = (),
        judgments: Sequence[Judgment] = (),
        gold_rankings: Mapping[str, Mapping[str, int]] | None = None,
        candidate_origins: Mapping[str, tuple[str, str | None]] | None = None,
        pseudonymised: Iterable[str] = (),
    ) -> None:
        """Insert many records in ONE transaction: all of them, or (on any error) none.

        Gold ranks: the new prompts' ``gold_ranking`` and ``gold_rankings`` (prompt id ->
        candidate id -> rank) for prompts already stored. ``candidate_origins``: candidate id
        -> (origin, set id) (default: ``imported``, the prompt's own set). ``pseudonymised``:
        ids of the new tutors whose names are already pseudonyms (``m0006_source_values``)."""
        cand_rows = [_candidate_to_row(c) for c in candidates]
        if candidate_origins:
            for row in cand_rows:
                row["origin"], row["set_id"] = candidate_origins.get(row["id"], ("imported", None))
        marked = set(pseudonymised)
        rankings: list[dict[str, Any]] = []
        corrections: list[dict[str, Any]] = []
        judgment_rows: list[dict[str, Any]] = []
        for j in judgments:
            jrow, rrows, crow = _judgment_rows(j)
            judgment_rows.append(jrow)
            rankings.extend(rrows)
            if crow is not None:
                corrections.append(crow)
        with self.db.atomic():
            self._insert_many(
                "tutors",
                [{"id": t.id, "name": t.name, "domains": _dumps(t.domains), "created_at": t.created_at,
                  **({"pseudonymised": int(t.id in marked)} if marked else {})}
                 for t in tutors],  # fmt: skip
            )
            self._insert_many(
                "sessions",
                [
                    {"id": x.id, "tutor_id": x.tutor_id, "domain": x.domain, "guideline_version": x.guideline_version,
                     "started_at": x.started_at, "ended_at": x.ended_at}
                    for x in sessions
                ],
            )  # fmt: skip
            self._insert_many("prompts", [_prompt_to_row(p) for p in prompts])
            self._insert_many("candidates", cand_rows)
            self._insert_many("judgments", judgment_rows)
            self._insert_many("rankings", rankings)
            self._insert_many("corrections", corrections)
            self._insert_many(
                "gold_rankings",
                [r for p in prompts if p.gold_ranking for r in _gold_rows(p.id, p.gold_ranking)]
                + [r for pid, g in (gold_rankings or {}).items() for r in _gold_rows(pid, dict(g))],
            )

    def _insert_many(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Plain executemany for rows that are already SQL values (bulk paths: import, merge).

        sqlite-utils' insert_all inspects every value to JSON-encode it; our rows are encoded
        already, and skipping that makes an import of 20 000 records several times faster.
        """
        if not rows:
            return
        columns = list(rows[0])
        sql = (
            f"insert into [{table}] ({', '.join(f'[{c}]' for c in columns)}) "
            f"values ({', '.join('?' * len(columns))})"
        )
        self.db.conn.executemany(sql, map(itemgetter(*columns), rows))  # every table has 2+ columns

    def judged_items(
        self,
        *,
        domain: str | None = None,
        tutor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        session_id: str | None = None,
        prompt_id: str | None = None,
        judgment_id: str | None = None,
        include_superseded: bool = False,
    ) -> Iterator[JudgedItem]:
        """Every judgment with its prompt, candidates, tutor and domain, oldest first.

        ``tutor`` is a tutor name; ``since``/``until`` are ISO dates or times (UTC).
        The domain of an item is its session's domain, else its prompt's. A judgment that was
        re-judged (another one ``supersedes`` it) is left out unless ``include_superseded``.
        """
        filters = [
            ("coalesce(s.domain, p.domain) = ?", domain),
            ("t.name = ?", tutor),
            ("j.created_at >= ?", since),
            ("j.created_at < ?", until),
            ("j.session_id = ?", session_id),
            ("j.prompt_id = ?", prompt_id),
            ("j.id = ?", judgment_id),
        ]
        where = ["1=1", *(sql for sql, value in filters if value)]
        lab = self._has_lab_schema()
        if not include_superseded and lab:
            where.append(_CURRENT_JUDGMENT)
        args = [value for _, value in filters if value]
        base = (
            "from judgments j join prompts p on p.id = j.prompt_id "
            "join tutors t on t.id = j.tutor_id left join sessions s on s.id = j.session_id "
            "where " + " and ".join(where)
        )
        ex = self.db.conn.execute
        jrows = ex(
            "select j.id, j.prompt_id, j.tutor_id, j.session_id, j.all_bad, j.rationale, j.strength, "
            "j.seconds_spent, j.display_order, j.guideline_version, j.created_at, "
            "t.name, coalesce(s.domain, p.domain), " + ("j.supersedes, " if lab else "null, ")
            + ("j.source_values " if self._has_source_values() else "null ") + base + " order by j.created_at, j.rowid",
            args,
        ).fetchall()
        if not jrows:
            return
        ranks: dict[str, list[tuple]] = defaultdict(list)
        for r in ex(
            "select judgment_id, candidate_id, rank, flags, ratings from rankings "
            f"where judgment_id in (select j.id {base})",
            args,
        ):
            ranks[r[0]].append(r)
        corrections = {
            r[0]: Correction(id=r[1], text=r[2], candidate_id=r[3], created_at=r[4])
            for r in ex(
                "select judgment_id, id, text, candidate_id, created_at from corrections "
                f"where judgment_id in (select j.id {base})",
                args,
            )
        }
        prompts = {
            r[0]: _row_to_prompt(r)
            for r in ex(f"select {_PROMPT_COLUMNS} from prompts where id in (select j.prompt_id {base})", args)
        }
        self._with_gold(list(prompts.values()))
        cands: dict[str, list[Candidate]] = defaultdict(list)
        for r in ex(
            f"select {_CANDIDATE_COLUMNS} from candidates where prompt_id in (select j.prompt_id {base}) "
            "order by prompt_id, idx, created_at",
            args,
        ):
            cands[r[1]].append(_row_to_candidate(r))
        for (jid, prompt_id, tutor_id, session_id, all_bad, rationale, strength, seconds_spent,
             display_order, guideline_version, created_at, tutor_name, item_domain, supersedes,
             source_values) in jrows:  # fmt: skip
            rr = ranks.get(jid, ())
            judgment = Judgment(
                id=jid,
                prompt_id=prompt_id,
                tutor_id=tutor_id,
                session_id=session_id,
                ranks={cid: rank for _, cid, rank, _, _ in rr},
                all_bad=bool(all_bad),
                flags={cid: f for _, cid, _, flags, _ in rr if (f := _loads(flags, []))},
                ratings={cid: g for _, cid, _, _, ratings in rr if (g := _loads(ratings, {}))},
                rationale=rationale or "",
                strength=strength if strength is not None else 2,
                seconds_spent=seconds_spent,
                display_order=_loads(display_order, []),
                guideline_version=guideline_version or "",
                correction=corrections.get(jid),
                created_at=created_at,
                supersedes=supersedes,
                source_values=_loads(source_values, {}),
            )
            yield JudgedItem(
                judgment=judgment,
                prompt=prompts[prompt_id],
                candidates=[c for c in cands.get(prompt_id, ()) if c.id in judgment.ranks],
                tutor_name=tutor_name,
                domain=item_domain,
            )

    # -- settings ------------------------------------------------------------------------

    def setting(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("select value from settings where key = ?", [key]).fetchone()
        return row[0] if row else default

    def sessions_by_id(self, session_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """session id -> {id, domain, guideline_version, started_at, ended_at}."""
        return {
            r[0]: dict(zip(("id", "domain", "guideline_version", "started_at", "ended_at"), r, strict=True))
            for r in self._rows_in(
                "select id, domain, guideline_version, started_at, ended_at from sessions where id in ({marks})",
                session_ids,
            )
        }

    def set_setting(self, key: str, value: str) -> None:
        with self.db.atomic():
            self.db["settings"].upsert({"key": key, "value": value}, pk="key")

    def pseudonymised_tutors(self) -> set[str]:
        """Names of the tutors whose name is already a pseudonym (``m0006_source_values``)."""
        if not self._has_source_values():
            return set()
        return {r[0] for r in self.db.execute("select name from tutors where pseudonymised = 1")}

    def pseudonym(self, tutor_name: str) -> str:
        """A stable stand-in for a tutor's name: an HMAC with this database's own salt. A name
        that is already a pseudonym (``tutors.pseudonymised``: imported from a pseudonymised
        export) is its own stand-in, so it never changes on export."""
        if self._has_source_values() and self.db.execute(
            "select 1 from tutors where name = ? and pseudonymised = 1", [tutor_name]
        ).fetchone():
            return tutor_name
        salt = self.setting("pseudonym_salt") or ""
        digest = hmac.new(salt.encode(), tutor_name.encode(), hashlib.sha256).hexdigest()
        return f"tutor-{digest[:10]}"

    # -- figures ---------------------------------------------------------------------------

    def domains(self) -> list[str]:
        return [
            r[0]
            for r in self.db.execute(
                "select domain from prompts union select domain from sessions order by 1"
            ).fetchall()
        ]

    def stats(self) -> dict[str, Any]:
        """Counts of prompts, candidates, judgments, pairs and tutors, overall and per domain."""
        from hitl_desktop.core.ranking import pairs_for_item

        def count(sql: str) -> int:
            return self.db.execute(sql).fetchone()[0]

        current = _CURRENT_JUDGMENT if self._has_lab_schema() else "1=1"

        per_domain: dict[str, dict[str, int]] = defaultdict(
            lambda: {"prompts": 0, "candidates": 0, "judgments": 0, "pairs": 0, "corrections": 0, "tutors": 0}
        )
        for dom, n in self.db.execute("select domain, count(*) from prompts group by domain"):
            per_domain[dom]["prompts"] = n
        for dom, n in self.db.execute(
            "select p.domain, count(*) from candidates c join prompts p on p.id = c.prompt_id group by p.domain"
        ):
            per_domain[dom]["candidates"] = n
        tutors_by_domain: dict[str, set[str]] = defaultdict(set)
        total_pairs = 0
        dropped: Counter[str] = Counter()  # what the pair rules left out, by reason
        for item in self.judged_items():
            d = per_domain[item.domain]
            d["judgments"] += 1
            n = len(pairs_for_item(item, dropped))
            d["pairs"] += n
            total_pairs += n
            if item.judgment.correction is not None:
                d["corrections"] += 1
            tutors_by_domain[item.domain].add(item.judgment.tutor_id)
        for dom, ids in tutors_by_domain.items():
            per_domain[dom]["tutors"] = len(ids)
        return {
            "prompts": count("select count(*) from prompts"),
            "candidates": count("select count(*) from candidates"),
            "judgments": count(f"select count(*) from judgments j where {current}"),
            "corrections": count(
                "select count(*) from corrections c join judgments j on j.id = c.judgment_id "
                f"where {current}"
            ),
            "pairs": total_pairs,
            "tutors": count("select count(*) from tutors"),
            "queued": count(
                "select count(*) from prompts p where not exists "
                "(select 1 from judgments j where j.prompt_id = p.id)"
            ),
            "domains": {k: per_domain[k] for k in sorted(per_domain)},
            "dropped": dict(sorted(dropped.items())),
        }

    # -- merging, gold items and figures --------------------------------------------------
    #
    # Used by core/merging.py (merge_databases) and core/quality.py. Merging works on raw
    # rows (dicts with the columns as stored), so that every column travels unchanged.

    #: The tables a merge brings over, parents before children (foreign keys hold at each step).
    MERGE_TABLES: tuple[str, ...] = (
        "tutors",
        "sessions",
        "prompts",
        "candidates",
        "judgments",
        "rankings",
        "corrections",
        "gold_rankings",
        "guidelines",
        "adjudications",
        *RUBRIC_TABLES,
    )

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str]) -> Store:
        """Open an existing hitl-desktop database READ-ONLY: a merge source, a background reader.

        Nothing is ever written to the file (``mode=ro``, ``query_only``, no migration). Raises
        ``NotAHitlDatabase`` for a missing or empty file, another application's file, a file of
        a newer schema, or one without the base schema.
        """
        p = Path(path)
        try:
            exists = check_database_file(p)
        except NotAHitlDatabase:
            # check_database_file reads the application id from the file header, but a database
            # still in use (or left by a crash) may hold its first pages in the WAL only: ask
            # SQLite, which reads through the WAL.
            if not cls._application_id_is_ours(p):
                raise
            exists = True
        if not exists:
            raise NotAHitlDatabase(f"{p}: no hitl-desktop database there (missing or empty file)")
        try:
            conn = cls._connect_readonly(p)
        except sqlite3.Error as e:
            raise StoreError(f"{p}: cannot open database read-only ({e})") from e
        store = cls(database(conn), p)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = ON")
            store._check_version()
            first = migrations._migrations[0].name
            if first not in store.schema_version():
                raise NotAHitlDatabase(f"{p}: has no hitl-desktop schema (step {first} missing)")
        except sqlite3.DatabaseError as e:
            conn.close()
            if isinstance(e, sqlite3.OperationalError) and _is_busy(e):
                raise DatabaseBusy(f"{p}: {BUSY_MESSAGE}") from e
            raise NotAHitlDatabase(f"{p}: cannot be read as a hitl-desktop database ({e})") from e
        except BaseException:
            conn.close()
            raise
        return store

    @staticmethod
    def _connect_readonly(p: Path) -> sqlite3.Connection:
        """A read-only connection. A database that nobody may write (a read-only file or
        folder, by its permission bits) is opened ``immutable``: SQLite then creates no -wal
        or -shm beside it, so reading writes nothing at all."""
        uri = p.resolve().as_uri()
        if _read_only_file(p):
            return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)
        return sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)

    @staticmethod
    def _application_id_is_ours(p: Path) -> bool:
        try:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
            try:
                return conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            finally:
                conn.close()
        except (sqlite3.Error, OSError):
            return False

    def backup_to(self, path: str | os.PathLike[str]) -> Path:
        """Copy the whole database to a NEW file with SQLite's online backup API; returns it.

        Consistent even while the database is in use (WAL included). Refuses to overwrite.
        """
        dest = Path(path)
        if dest.exists():
            raise StoreError(f"{dest}: already exists; a backup never overwrites a file")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(dest))
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"{dest}: cannot create backup ({e})") from e
        try:
            self.db.conn.backup(conn)
        except sqlite3.Error as e:
            conn.close()
            dest.unlink(missing_ok=True)
            raise StoreError(f"{dest}: backup failed ({e})") from e
        conn.close()
        return dest

    def table_counts(self, tables: Sequence[str] = MERGE_TABLES) -> dict[str, int]:
        """Rows per table (merge progress, tests); 0 for a table an older database lacks."""
        for t in tables:
            self._check_merge_table(t)
        return {
            t: self.db.execute(f"select count(*) from [{t}]").fetchone()[0] if self.has_table(t) else 0
            for t in tables
        }

    def has_table(self, table: str) -> bool:
        """Whether the database has this table (an older schema may lack a newer one)."""
        return self.db[table].exists()

    def gold_prompt_ids_among(self, prompt_ids: Iterable[str]) -> set[str]:
        """Those of ``prompt_ids`` that have gold ranks (a merge never changes them)."""
        return set(self.gold_rankings(prompt_ids))

    def iter_raw_rows(self, table: str, *, batch_size: int = 500) -> Iterator[list[dict[str, Any]]]:
        """A merge table's rows as stored (column -> value), in batches.

        In insertion order; candidates grouped by prompt in idx order.
        """
        self._check_merge_table(table)
        if table == "gold_rankings" and not self.db["gold_rankings"].exists():
            # a source from before m0003 (opened read-only, not migrated): its gold by position
            rows = gold_rows_from_positions(self.db)
            for start in range(0, len(rows), batch_size):
                yield rows[start : start + batch_size]
            return
        if not self.db[table].exists():  # a source of an older schema
            return
        # a prompt's candidates together and in idx order: merging matches them by text in order
        order = "prompt_id, idx, created_at, rowid" if table == "candidates" else "rowid"
        cur = self.db.conn.execute(f"select * from [{table}] order by {order}")
        names = [d[0] for d in cur.description]
        while True:
            chunk = cur.fetchmany(batch_size)
            if not chunk:
                return
            yield [dict(zip(names, row, strict=True)) for row in chunk]

    def existing_ids(self, table: str, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` that are rows of ``table`` (by its ``id`` column)."""
        self._check_merge_table(table)
        if table == "rankings":
            raise StoreError("rankings have no id column")
        return {r[0] for r in self._rows_in(f"select id from [{table}] where id in ({{marks}})", ids)}

    def tutor_ids_by_name(self, names: Iterable[str]) -> dict[str, str]:
        """tutor name -> tutor id, for those that exist."""
        return dict(self._rows_in("select name, id from tutors where name in ({marks})", names))

    def candidate_keys(self, prompt_ids: Iterable[str]) -> list[tuple[str, str, int, str]]:
        """(prompt id, candidate id, idx, text) of the given prompts' candidates, in idx order."""
        return [
            (pid, cid, idx or 0, text)
            for pid, cid, idx, text in self._rows_in(
                "select prompt_id, id, idx, text from candidates where prompt_id in ({marks}) "
                "order by prompt_id, idx, created_at, rowid",
                prompt_ids,
            )
        ]

    def insert_raw_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows as stored (from ``iter_raw_rows``), in one transaction (or savepoint).

        Plain INSERT: a row that clashes with an existing one is an error, never a silent skip.
        """
        self._check_merge_table(table)
        if not rows:
            return
        with self.db.atomic():
            self.db[table].insert_all(rows, batch_size=500)

    def candidates_by_prompt(self, prompt_ids: Iterable[str]) -> dict[str, list[Candidate]]:
        """prompt id -> ALL its candidates in idx order (what ``gold_ranking`` is aligned with)."""
        wanted = list(prompt_ids)
        out: dict[str, list[Candidate]] = {pid: [] for pid in wanted}
        for r in self._rows_in(
            f"select {_CANDIDATE_COLUMNS} from candidates where prompt_id in ({{marks}}) "
            "order by prompt_id, idx, created_at, rowid",
            wanted,
        ):
            out[r[1]].append(_row_to_candidate(r))
        return out

    def guideline_keys(self) -> set[tuple[str, str]]:
        """(domain, version) of every guideline version kept here."""
        return set(self.db.execute("select domain, version from guidelines"))

    def _check_merge_table(self, table: str) -> None:
        if table not in self.MERGE_TABLES:
            raise StoreError(f"{table}: not a table a merge handles")

    # -- reliability -------------------------------------------------------------------------
    #
    # Hooks of core/backup.py (integrity check and backups on open) and the change marker its
    # BackupScheduler watches.

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check``; raises ``backup.CorruptDatabase`` naming the latest good backup."""
        backup.check_integrity(self)

    def _backup_before_use(self) -> None:
        """A backup before migrations, or the periodic one on open (see core/backup.py)."""
        backup.on_open(self, pending_migrations=bool(migrations.pending(self.db)))

    def change_marker(self) -> tuple[int, int]:
        """Changes so far: this connection's ``total_changes`` and ``PRAGMA data_version``
        (which moves when another connection commits). Equal markers: nothing changed."""
        return (self.db.conn.total_changes, self.db.execute("PRAGMA data_version").fetchone()[0])

    # -- review and adjudication (core/review.py) ---------------------------------------------

    def add_adjudication(self, adjudication: Adjudication) -> Adjudication:
        """Record an adjudication (checked by core/review.py): one transaction, never an update."""
        a = adjudication
        try:
            with self.db.atomic():
                self.db["adjudications"].insert(
                    {
                        "id": a.id,
                        "prompt_id": a.prompt_id,
                        "ranking": _dumps(a.ranks),
                        "rationale": a.rationale,
                        "adjudicator": a.adjudicator,
                        "created_at": a.created_at,
                    }
                )
        except sqlite3.IntegrityError as e:
            raise StoreError(f"adjudication not saved: {e}") from e
        return a

    def adjudications(
        self, *, prompt_ids: Iterable[str] | None = None, current_only: bool = True
    ) -> list[Adjudication]:
        """Adjudications, oldest first; ``current_only``: the latest of each prompt (by
        ``created_at``, then id); ``prompt_ids``: those prompts' only."""
        if not self.has_table("adjudications"):  # a database from before m0005, opened read-only
            return []
        sql = "select a.id, a.prompt_id, a.ranking, a.rationale, a.adjudicator, a.created_at from adjudications a"
        where = []
        if current_only:
            where.append(
                "not exists (select 1 from adjudications b where b.prompt_id = a.prompt_id and "
                "(b.created_at > a.created_at or (b.created_at = a.created_at and b.id > a.id)))"
            )
        if prompt_ids is not None:
            where.append("a.prompt_id in ({marks})")
        sql += (" where " + " and ".join(where) if where else "") + " order by a.created_at, a.id"
        rows = self._rows_in(sql, prompt_ids) if prompt_ids is not None else self.db.execute(sql)
        out = [
            Adjudication(
                id=aid, prompt_id=pid, ranks=_loads(ranking, {}), rationale=rationale,
                adjudicator=adjudicator, created_at=created_at,
            )
            for aid, pid, ranking, rationale, adjudicator, created_at in rows
        ]
        return sorted(out, key=lambda a: (a.created_at, a.id))

    def judgment_history(
        self,
        *,
        session_id: str | None = None,
        tutor: str | None = None,
        domain: str | None = None,
        text: str | None = None,
        flag: str | None = None,
        limit: int | None = None,
        include_superseded: bool = False,
    ) -> list[dict[str, Any]]:
        """Judgments, newest first, as plain rows for the history view: ``id``, ``created_at``,
        ``prompt_id``, ``prompt``, ``tutor``, ``domain``, ``flags`` (sorted, any candidate's),
        ``all_bad``, ``corrected``, ``candidates`` (ranked), ``rationale``.

        ``text``: the prompt contains it (case-insensitive for ASCII); ``tutor``: tutor name;
        ``domain``: the item's domain (its session's, else its prompt's); ``flag``: some
        candidate carries that flag. A judgment re-judged since (another ``supersedes`` it) is
        left out unless ``include_superseded`` (the audit trail)."""
        filters: list[tuple[str, Any]] = [
            ("j.session_id = ?", session_id),
            ("t.name = ?", tutor),
            ("coalesce(s.domain, p.domain) = ?", domain),
        ]
        if text:
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            filters.append(("p.text like ? escape '\\'", f"%{escaped}%"))
        if flag:
            filters.append(
                ("exists (select 1 from rankings f where f.judgment_id = j.id and f.flags like ?)", f'%"{flag}"%')
            )
        where = ["1=1", *(sql for sql, value in filters if value)]
        if not include_superseded and self._has_lab_schema():
            where.append(_CURRENT_JUDGMENT)
        args = [value for _, value in filters if value]
        sql = (
            "select j.id, j.created_at, j.prompt_id, p.text, t.name, coalesce(s.domain, p.domain), "
            "j.all_bad, j.rationale, "
            "(select count(*) from rankings r where r.judgment_id = j.id), "
            "(select group_concat(r.flags, '|') from rankings r where r.judgment_id = j.id), "
            "exists (select 1 from corrections c where c.judgment_id = j.id) "
            "from judgments j join prompts p on p.id = j.prompt_id join tutors t on t.id = j.tutor_id "
            "left join sessions s on s.id = j.session_id where " + " and ".join(where)
            + " order by j.created_at desc, j.rowid desc"
        )
        if limit is not None:
            sql += f" limit {int(limit)}"
        out = []
        for jid, created_at, pid, ptext, tname, dom, all_bad, rationale, n, flags, corrected in self.db.execute(sql, args):
            found: set[str] = set()
            for part in (flags or "").split("|"):
                found.update(_loads(part, []))
            out.append(
                {
                    "id": jid, "created_at": created_at, "prompt_id": pid, "prompt": ptext,
                    "tutor": tname, "domain": dom, "flags": sorted(found), "all_bad": bool(all_bad),
                    "corrected": bool(corrected), "candidates": n, "rationale": rationale or "",
                }
            )
        return out
