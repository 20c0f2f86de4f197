"""Guidelines kept in the database: every version of a domain's guidelines a judgment was made under."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hitl_desktop.core.store.base import StoreBase
from hitl_desktop.core.types import now_iso


class Guidelines(StoreBase):
    """Table ``guidelines`` (step m0004): (domain, version) -> text, so that a judgment's
    ``guideline_version`` resolves here and in a merge."""

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

    def guideline_keys(self) -> set[tuple[str, str]]:
        """(domain, version) of every guideline version kept here."""
        return set(self.db.execute("select domain, version from guidelines"))
