"""sqlite-utils, imported without pandas and numpy, and its ``Database`` without plugins.

sqlite-utils imports pandas and numpy when they are installed (they are, for ``datasets`` and
torch) only to map their scalar types to column types. That costs about a second at every
launch, before the window can show, and the store never inserts pandas or numpy values
(sqlite3 cannot bind them anyway). So both are hidden while sqlite-utils is first imported
(it treats them as absent); anything importing them later gets them as usual.

``database(conn)`` opens a ``Database`` without running sqlite-utils plugins: scanning every
installed package's entry points for them costs tens of milliseconds, and a plugin's
``prepare_connection`` hook has no business changing a tutor's database.

Every module in ``core`` takes ``Database`` and ``Migrations`` from here, never from
sqlite-utils directly, so whichever imports first gets the light import.
"""

from __future__ import annotations

import sqlite3
import sys

_HIDDEN = ("pandas", "numpy")


def _import_light() -> None:
    if "sqlite_utils" in sys.modules:
        return
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import pandas" -> ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


_import_light()

from sqlite_utils import Database, Migrations  # noqa: E402

__all__ = ["Database", "Migrations", "database"]


def database(conn: sqlite3.Connection) -> Database:
    """A sqlite-utils ``Database`` on ``conn``, without sqlite-utils plugins, with
    ``PRAGMA trusted_schema = OFF`` (a file's views and triggers run no function with side
    effects; ``core/dbschema.py`` refuses a file holding any it did not make)."""
    conn.execute("PRAGMA trusted_schema = OFF")
    return Database(conn, execute_plugins=False)
