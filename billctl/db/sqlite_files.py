"""The SQLite file behind a ``sqlite:///PATH`` URL: checked before anything opens it (a mistyped path
must not leave an empty database behind). No SQLAlchemy here: the light read path
(``billctl.db.read``) uses it too."""

from __future__ import annotations

import os
from pathlib import Path

from billctl.errors import ConfigError, SchemaBehind

SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(path: Path, *, create: bool) -> None:
    """Refuse a SQLite path that cannot be billctl's database, naming what is wrong with it."""
    where = f"database.url: {path}"
    if not path.parent.is_dir():
        raise ConfigError(f"{where}: the directory {path.parent} does not exist", hint="create it, or fix the path")
    if not path.exists():
        if create:
            if not os.access(path.parent, os.W_OK):
                raise ConfigError(
                    f"{where}: cannot create the database: the directory {path.parent} is not writable",
                    hint="fix its permissions, or choose another path",
                )
            return
        raise SchemaBehind(
            f"{where}: there is no database at this path",
            hint="check the path; to create a new database there, run `billctl db upgrade`",
        )
    if path.is_dir():
        raise ConfigError(f"{where} is a directory, not a database file", hint="name a file, e.g. sqlite:///billctl.db")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the file: {exc.strerror}", hint="fix its permissions") from None
    if header and header != SQLITE_HEADER:
        raise ConfigError(
            f"{where} is not a SQLite database (the file starts with {header[:8]!r})",
            hint="fix database.url; a new database is created with `billctl db upgrade`",
        )
