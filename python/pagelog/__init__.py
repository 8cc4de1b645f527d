"""pagelog for Python's sqlite3: a SQLite VFS that keeps every committed
transaction as a numbered version in one append-only log file.

    import sqlite3, pagelog

    db = pagelog.connect("app.db")              # loads the extension, opens through the VFS
    db.execute("CREATE TABLE t(x)"); db.commit()
    pagelog.current_version(db)                 # 1
    [v.version for v in pagelog.versions(db)]   # [1] (version 0 is the empty database)
    old = pagelog.connect("app.db", version=0)  # version 0, read-only, in place
    pagelog.diff(db, 0, 1)                      # [Change(table='t', kind='create', ...)]

Or, in the convention of sqlite-vec and sqlean, load it into a connection
you made and open databases yourself with `vfs=pagelog`:

    conn = sqlite3.connect(":memory:")
    pagelog.load(conn)                          # registers the VFS for the whole process
    db = sqlite3.connect("file:app.db?vfs=pagelog", uri=True)

Loading needs a Python whose sqlite3 module can load extensions (Debian's
and most Linux distributions' python3 can; pyenv's and python.org's macOS
builds usually cannot). Where it cannot, `load` raises
`ExtensionLoadingUnavailable` saying what to use instead.

Invariants: the extension is loaded into a process once, permanently (it
registers a VFS that outlives the loading connection); a connection's
extension loading is left disabled after `load`, as it was.
"""

import datetime
import json
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

__all__ = [
    "Change",
    "ExtensionLoadingUnavailable",
    "Version",
    "connect",
    "current_version",
    "diff",
    "load",
    "loadable_path",
    "uri",
    "versions",
]

__version__ = "0.1.0"

_LIBRARY = "libpagelog.so"

_NO_LOADING = (
    "This Python's sqlite3 module cannot load SQLite extensions ({why}), so pagelog cannot be "
    "loaded into it. pyenv's and python.org's macOS builds leave extension loading out unless "
    "Python is built with --enable-loadable-sqlite-extensions. Use a Python that has it: "
    "Debian's or Ubuntu's /usr/bin/python3, a pyenv Python built with "
    "PYTHON_CONFIGURE_OPTS=--enable-loadable-sqlite-extensions, or the pysqlite3 package "
    "(`from pysqlite3 import dbapi2 as sqlite3`; then pagelog.load(conn) and "
    "sqlite3.connect(pagelog.uri(path), uri=True))."
)


class ExtensionLoadingUnavailable(RuntimeError):
    """The interpreter's sqlite3 module cannot load SQLite extensions."""


def loadable_path() -> str:
    """The path of the bundled loadable extension (libpagelog.so)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), _LIBRARY)


def load(conn: Any) -> None:
    """Loads the pagelog extension through `conn` (a sqlite3 connection).

    This registers the `pagelog` VFS for the whole process and, on every
    connection opened afterwards, the SQL `pagelog_version()`,
    `pagelog_log` and `pagelog_diff`. Loading again is harmless. Extension
    loading on `conn` is disabled again afterwards.
    """
    enable = getattr(conn, "enable_load_extension", None)
    if enable is None:
        raise ExtensionLoadingUnavailable(
            _NO_LOADING.format(why="its connections have no enable_load_extension method")
        )
    path = loadable_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            "pagelog: the extension %s is missing; reinstall the package (pip install ./python)" % path
        )
    try:
        enable(True)
    except Exception as e:  # the SQLite underneath was built without loading (SQLITE_OMIT_LOAD_EXTENSION)
        raise ExtensionLoadingUnavailable(_NO_LOADING.format(why="enable_load_extension(True) failed: %s" % e)) from e
    try:
        conn.load_extension(path)
    finally:
        enable(False)


_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        boot = sqlite3.connect(":memory:")
        try:
            load(boot)
        finally:
            boot.close()
        _loaded = True


def uri(path: Union[str, bytes, "os.PathLike[Any]"], version: Optional[int] = None, **params: Any) -> str:
    """The URI that opens `path` through pagelog: `file:PATH?vfs=pagelog`,
    with `&version=N` (that version, read-only) and any other URI
    parameters (`mode="ro"`, ...). The path is percent-encoded byte for
    byte, so names with `?`, `#`, `%` or non-UTF-8 bytes reach the right file.
    """
    p = os.fspath(path)
    query = [("vfs", "pagelog")]
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError("version must be a version number (0, 1, 2, ...), not %r" % (version,))
        query.append(("version", str(version)))
    query.extend((k, str(v)) for k, v in params.items())
    return "file:%s?%s" % (urllib.parse.quote(p, safe="/"), urllib.parse.urlencode(query))


def connect(
    path: Union[str, bytes, "os.PathLike[Any]"], version: Optional[int] = None, **kwargs: Any
) -> sqlite3.Connection:
    """Opens `path` through pagelog with Python's sqlite3 (loading the
    extension first if needed). With `version=N`, opens that version
    read-only, in place; writes then fail with "attempt to write a readonly
    database". Other keyword arguments go to `sqlite3.connect`.
    """
    _ensure_loaded()
    return sqlite3.connect(uri(path, version), uri=True, **kwargs)


@dataclass(frozen=True)
class Version:
    """One row of `pagelog_log`: a committed version of the database."""

    version: int
    timestamp: datetime.datetime  # when it was committed, UTC
    pages_written: int
    db_pages: int
    page_size: int
    bytes: int  # bytes it added to the log
    full_map: bool


def versions(conn: Any, schema: str = "main") -> List[Version]:
    """Every version in the log of `conn`'s database `schema`, oldest first."""
    rows = conn.execute(
        "SELECT version, timestamp_us, pages_written, db_pages, page_size, bytes, full_map "
        "FROM pagelog_log(?) ORDER BY version",
        (schema,),
    ).fetchall()
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return [
        Version(v, epoch + datetime.timedelta(microseconds=ts), pw, dp, ps, b, bool(fm))
        for (v, ts, pw, dp, ps, b, fm) in rows
    ]


def current_version(conn: Any, schema: str = "main") -> int:
    """The version `conn` reads: inside a transaction the one it started on,
    outside it the latest."""
    return conn.execute("SELECT pagelog_version(?)", (schema,)).fetchone()[0]


@dataclass(frozen=True)
class Change:
    """One change between two versions, as a row of `pagelog_diff`.

    Rows: `kind` is "insert", "delete" or "update"; `key` is {"rowid": N}
    or the PRIMARY KEY columns; `old` / `new` map columns to values (the
    whole row for inserts and deletes, the changed columns for updates;
    None where there is no such side). BLOB values are `bytes`.

    Schema objects: `kind` is "create", "drop" or "alter", `table` is the
    object's name, `key` is {"type": "table" | "index" | "view" | "trigger"},
    `old` / `new` its SQL text (or None).
    """

    table: str
    kind: str
    key: Dict[str, Any]
    old: Union[Dict[str, Any], str, None]
    new: Union[Dict[str, Any], str, None]

    @property
    def is_schema(self) -> bool:
        return self.kind in ("create", "drop", "alter")


def _value(v: Any) -> Any:
    # A BLOB is the only value the diff writes as a JSON object.
    if isinstance(v, dict) and set(v) == {"blob"}:
        return bytes.fromhex(v["blob"])
    return v


def _values(text: Optional[str]) -> Optional[Dict[str, Any]]:
    if text is None:
        return None
    return {k: _value(v) for k, v in json.loads(text).items()}


def diff(conn: Any, a: int, b: Optional[int] = None, schema: str = "main") -> List[Change]:
    """What changed from version `a` to version `b` (default a + 1) of
    `conn`'s database `schema`: schema objects first, then rows, table by
    table. Either direction works."""
    rows = conn.execute(
        'SELECT "table", kind, key, old, new FROM pagelog_diff(?, ?, ?)',
        (a, b, schema),
    ).fetchall()
    out = []
    for table, kind, key, old, new in rows:
        if kind in ("create", "drop", "alter"):
            out.append(Change(table, kind, json.loads(key), old, new))
        else:
            out.append(Change(table, kind, {k: _value(v) for k, v in json.loads(key).items()}, _values(old), _values(new)))
    return out
