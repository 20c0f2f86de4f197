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
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import platformdirs
from sqlite_utils import Database

from hitl_desktop.core.migrations import APPLICATION_ID, migrations
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

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000


class StoreError(Exception):
    """A database problem, with a message a tutor can act on."""


class NotAHitlDatabase(StoreError):
    """The file is not a hitl-desktop database (or is of a newer version): it is left alone."""


# -- reliability: "database is locked" --------------------------------------------------------

BUSY_MESSAGE = (
    "the database is busy: another hitl-desktop window or command is writing to it; try again"
)


class DatabaseBusy(StoreError, sqlite3.OperationalError):
    """Another connection held the write lock beyond the busy timeout. Also an
    ``sqlite3.OperationalError``, so code that handles SQLite errors still sees one."""


def _is_busy(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    msg = str(e).lower()
    return "database is locked" in msg or "database is busy" in msg


class BusyAwareConnection(sqlite3.Connection):
    """The Store's connection: ``BEGIN`` is ``BEGIN IMMEDIATE`` (a write transaction takes the
    write lock up front, waiting up to the busy timeout, instead of failing at once when it
    upgrades a stale read snapshot), and "database is locked" becomes ``DatabaseBusy``."""

    def execute(self, sql, parameters=(), /):  # type: ignore[override]
        if sql == "BEGIN":  # sqlite_utils' db.atomic()
            sql = "BEGIN IMMEDIATE"
        try:
            return super().execute(sql, parameters)
        except sqlite3.OperationalError as e:
            if _is_busy(e):
                raise DatabaseBusy(BUSY_MESSAGE) from e
            raise

    def executemany(self, sql, parameters, /):  # type: ignore[override]
        try:
            return super().executemany(sql, parameters)
        except sqlite3.OperationalError as e:
            if _is_busy(e):
                raise DatabaseBusy(BUSY_MESSAGE) from e
            raise

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.OperationalError as e:
            if _is_busy(e):
                raise DatabaseBusy(BUSY_MESSAGE) from e
            raise


def default_db_path() -> Path:
    """The default database, in the platform's user data folder."""
    env = os.environ.get("HITL_DESKTOP_DB")
    if env:
        return Path(env)
    return platformdirs.user_data_path("hitl-desktop", appauthor=False) / "hitl-desktop.db"


def check_database_file(path: str | os.PathLike[str]) -> bool:
    """Refuse anything that is not a hitl-desktop database, touching nothing.

    Returns True when the file exists and is one of ours, False when there is nothing there
    yet (a new database will be created). Raises ``NotAHitlDatabase`` otherwise.
    """
    p = Path(path)
    if p.is_dir():
        raise NotAHitlDatabase(f"{p}: is a folder, not a database file")
    if not p.exists() or p.stat().st_size == 0:
        return False
    try:
        with p.open("rb") as f:
            header = f.read(100)
    except OSError as e:
        raise NotAHitlDatabase(f"{p}: cannot be read ({e.strerror})") from e
    if not header.startswith(SQLITE_HEADER):
        raise NotAHitlDatabase(f"{p}: is not an SQLite database")
    if len(header) < 100:
        raise NotAHitlDatabase(f"{p}: is truncated (no complete SQLite header)")
    app_id = int.from_bytes(header[68:72], "big")
    if app_id != APPLICATION_ID:
        # The header on disk can lag behind: after a crash (or while another window has it
        # open) the first pages may still be in the -wal file. Ask SQLite, read-only.
        try:
            conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
            try:
                app_id = conn.execute("pragma application_id").fetchone()[0]
                tables = [r[0] for r in conn.execute("select name from sqlite_master")]
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            raise NotAHitlDatabase(f"{p}: is not a readable SQLite database ({e})") from e
        if app_id == APPLICATION_ID:
            return True
        if tables:
            raise NotAHitlDatabase(
                f"{p}: is an SQLite database of another application "
                f"(tables: {', '.join(sorted(tables)[:5])}); refusing to touch it"
            )
        return False
    return True


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
        gold_ranking=_loads(gold, None),
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
        "gold_ranking": None if p.gold_ranking is None else _dumps(p.gold_ranking),
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


class Store:
    """hitl-desktop's database. Create with ``Store.open(path)`` or ``Store.memory()``.

    A Store belongs to the thread that opened it (SQLite connections are per thread).
    """

    def __init__(self, db: Database, path: Path | None) -> None:
        self.db = db
        self.path = path

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
        """Open (and migrate) the database at ``path``; the default database when None.

        Raises ``NotAHitlDatabase`` for a file of another kind, leaving it unmodified.
        """
        p = Path(path) if path is not None else default_db_path()
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
        store = cls(Database(conn), p)
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
        store = cls(Database(sqlite3.connect(":memory:")), None)
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

    def schema_version(self) -> list[str]:
        return [m.name for m in migrations.applied(self.db)]

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
        return _row_to_prompt(row)

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
        """external id -> prompt, for those that exist."""
        return {
            p.external_id: p
            for p in map(
                _row_to_prompt,
                self._rows_in(f"select {_PROMPT_COLUMNS} from prompts where external_id in ({{marks}})", external_ids),
            )
        }

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

    def add_candidates(self, candidates: Sequence[Candidate]) -> None:
        with self.db.atomic():
            self.db["candidates"].insert_all(_candidate_to_row(c) for c in candidates)

    def replace_candidate(self, old_id: str, new: Candidate) -> None:
        """Swap an unjudged candidate for a regenerated one, in one transaction."""
        with self.db.atomic():
            if self.db.execute("select 1 from rankings where candidate_id = ?", [old_id]).fetchone():
                raise StoreError("a judged candidate cannot be replaced")
            self.db["candidates"].delete(old_id)
            self.db["candidates"].insert(_candidate_to_row(new))

    def delete_unjudged_candidates(self, prompt_id: str) -> int:
        """Remove a prompt's candidates that no judgment refers to (before regenerating all)."""
        with self.db.atomic():
            cur = self.db.execute(
                "delete from candidates where prompt_id = ? and id not in "
                "(select candidate_id from rankings) and id not in "
                "(select candidate_id from corrections where candidate_id is not null)",
                [prompt_id],
            )
            return cur.rowcount

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
        """Save a judgment with its ranks, flags, ratings and correction: one transaction."""
        from hitl_desktop.core.ranking import validate_judgment

        candidates = self.candidates_for(judgment.prompt_id)
        validate_judgment(judgment, [c.id for c in candidates])
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
            self.db.execute("delete from rankings where judgment_id = ?", [judgment_id])
            self.db.execute("delete from judgments where id = ?", [judgment_id])

    def judgments_for(self, prompt_id: str) -> list[Judgment]:
        return [item.judgment for item in self.judged_items(prompt_id=prompt_id)]

    def bulk_insert(
        self,
        *,
        tutors: Sequence[Tutor] = (),
        prompts: Sequence[Prompt] = (),
        candidates: Sequence[Candidate] = (),
        judgments: Sequence[Judgment] = (),
    ) -> None:
        """Insert many records in ONE transaction: all of them, or (on any error) none."""
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
                [{"id": t.id, "name": t.name, "domains": _dumps(t.domains), "created_at": t.created_at} for t in tutors],
            )
            self._insert_many("prompts", [_prompt_to_row(p) for p in prompts])
            self._insert_many("candidates", [_candidate_to_row(c) for c in candidates])
            self._insert_many("judgments", judgment_rows)
            self._insert_many("rankings", rankings)
            self._insert_many("corrections", corrections)

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
    ) -> Iterator[JudgedItem]:
        """Every judgment with its prompt, candidates, tutor and domain, oldest first.

        ``tutor`` is a tutor name; ``since``/``until`` are ISO dates or times (UTC).
        The domain of an item is its session's domain, else its prompt's.
        """
        filters = [
            ("coalesce(s.domain, p.domain) = ?", domain),
            ("t.name = ?", tutor),
            ("j.created_at >= ?", since),
            ("j.created_at < ?", until),
            ("j.session_id = ?", session_id),
            ("j.prompt_id = ?", prompt_id),
        ]
        where = ["1=1", *(sql for sql, value in filters if value)]
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
            "t.name, coalesce(s.domain, p.domain) " + base + " order by j.created_at, j.rowid",
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
        cands: dict[str, list[Candidate]] = defaultdict(list)
        for r in ex(
            f"select {_CANDIDATE_COLUMNS} from candidates where prompt_id in (select j.prompt_id {base}) "
            "order by prompt_id, idx, created_at",
            args,
        ):
            cands[r[1]].append(_row_to_candidate(r))
        for (jid, prompt_id, tutor_id, session_id, all_bad, rationale, strength, seconds_spent,
             display_order, guideline_version, created_at, tutor_name, item_domain) in jrows:  # fmt: skip
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

    def set_setting(self, key: str, value: str) -> None:
        with self.db.atomic():
            self.db["settings"].upsert({"key": key, "value": value}, pk="key")

    def pseudonym(self, tutor_name: str) -> str:
        """A stable stand-in for a tutor's name: an HMAC with this database's own salt."""
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
        for item in self.judged_items():
            d = per_domain[item.domain]
            d["judgments"] += 1
            n = len(pairs_for_item(item))
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
            "judgments": count("select count(*) from judgments"),
            "corrections": count("select count(*) from corrections"),
            "pairs": total_pairs,
            "tutors": count("select count(*) from tutors"),
            "queued": count(
                "select count(*) from prompts p where not exists "
                "(select 1 from judgments j where j.prompt_id = p.id)"
            ),
            "domains": {k: per_domain[k] for k in sorted(per_domain)},
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
        "adjudications",
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
            conn = sqlite3.connect(
                f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
            )
        except sqlite3.Error as e:
            raise StoreError(f"{p}: cannot open database read-only ({e})") from e
        store = cls(Database(conn), p)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = ON")
            store._check_version()
            first = migrations._migrations[0].name
            if first not in store.schema_version():
                raise NotAHitlDatabase(f"{p}: has no hitl-desktop schema (step {first} missing)")
        except sqlite3.DatabaseError as e:
            conn.close()
            raise NotAHitlDatabase(f"{p}: cannot be read as a hitl-desktop database ({e})") from e
        except BaseException:
            conn.close()
            raise
        return store

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

    def iter_raw_rows(self, table: str, *, batch_size: int = 500) -> Iterator[list[dict[str, Any]]]:
        """A merge table's rows as stored (column -> value), in batches.

        In insertion order; candidates grouped by prompt in idx order.
        """
        self._check_merge_table(table)
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

    def _check_merge_table(self, table: str) -> None:
        if table not in self.MERGE_TABLES:
            raise StoreError(f"{table}: not a table a merge handles")

    # -- reliability -------------------------------------------------------------------------
    #
    # Hooks of core/backup.py (integrity check and backups on open) and the change marker its
    # BackupScheduler watches.

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check``; raises ``backup.CorruptDatabase`` naming the latest good backup."""
        from hitl_desktop.core import backup

        backup.check_integrity(self)

    def _backup_before_use(self) -> None:
        """A backup before migrations, or the periodic one on open (see core/backup.py)."""
        from hitl_desktop.core import backup

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
    ) -> list[dict[str, Any]]:
        """Judgments, newest first, as plain rows for the history view: ``id``, ``created_at``,
        ``prompt_id``, ``prompt``, ``tutor``, ``domain``, ``flags`` (sorted, any candidate's),
        ``all_bad``, ``corrected``, ``candidates`` (ranked), ``rationale``.

        ``text``: the prompt contains it (case-insensitive for ASCII); ``tutor``: tutor name;
        ``domain``: the item's domain (its session's, else its prompt's); ``flag``: some
        candidate carries that flag."""
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
