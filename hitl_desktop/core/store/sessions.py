"""Tutors, their sessions, and the database's settings (the pseudonym salt and its pseudonyms)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Any

from hitl_desktop.core.dbfile import StoreError
from hitl_desktop.core.store.base import StoreBase
from hitl_desktop.core.store.rows import TUTOR_COLUMNS, dumps, row_to_tutor, tutor_to_row
from hitl_desktop.core.types import Session, Tutor, now_iso


class Sessions(StoreBase):
    """Tables ``tutors``, ``sessions`` and ``settings``."""

    # -- tutors -----------------------------------------------------------------------------

    def ensure_tutor(self, name: str, domains: Sequence[str] | None = None) -> Tutor:
        """The tutor of that name, created when new; ``domains`` updates their domains."""
        name = name.strip()
        if not name:
            raise StoreError("a tutor needs a name")
        with self.db.atomic():
            tutor = self.tutor_by_name(name)
            if tutor is None:
                tutor = Tutor(name=name, domains=list(domains or []))
                self.db["tutors"].insert(tutor_to_row(tutor))
            elif domains is not None and list(domains) != tutor.domains:
                tutor.domains = list(domains)
                self.db["tutors"].update(tutor.id, {"domains": dumps(tutor.domains)})
        return tutor

    def tutor_by_name(self, name: str) -> Tutor | None:
        row = self.db.execute(f"select {TUTOR_COLUMNS} from tutors where name = ?", [name]).fetchone()
        return None if row is None else row_to_tutor(row)

    def tutors(self) -> list[Tutor]:
        return [row_to_tutor(r) for r in self.db.execute(f"select {TUTOR_COLUMNS} from tutors order by name")]

    def tutor_ids_by_name(self, names: Iterable[str]) -> dict[str, str]:
        """tutor name -> tutor id, for those that exist."""
        return dict(self._rows_in("select name, id from tutors where name in ({marks})", names))

    # -- sessions ---------------------------------------------------------------------------

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

    def sessions_by_id(self, session_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """session id -> {id, domain, guideline_version, started_at, ended_at}."""
        return {
            r[0]: dict(zip(("id", "domain", "guideline_version", "started_at", "ended_at"), r, strict=True))
            for r in self._rows_in(
                "select id, domain, guideline_version, started_at, ended_at from sessions where id in ({marks})",
                session_ids,
            )
        }

    # -- settings and pseudonyms ------------------------------------------------------------

    def setting(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("select value from settings where key = ?", [key]).fetchone()
        return row[0] if row else default

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
