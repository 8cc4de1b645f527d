"""Checks the installed `pagelog` Python package (python/) end to end.

Run by tests/tests/python_package.rs with the python of a fresh virtualenv
that `pip install ./python` installed into, in an empty directory:

    check_package.py DIR     # DIR: an empty directory for the databases

No pytest: plain asserts; prints "ok" at the end.
"""

import os
import sqlite3
import sys

import pagelog

d = sys.argv[1]

# The installed copy is imported, not python/pagelog of the source tree.
assert sys.prefix != sys.base_prefix, "not running in a virtualenv"
assert pagelog.__file__.startswith(sys.prefix), pagelog.__file__
assert os.path.isfile(pagelog.loadable_path()), pagelog.loadable_path()

# The sqlite-vec convention: load into a connection of one's own, then open
# databases with vfs=pagelog. Loading twice is harmless; loading is left off.
boot = sqlite3.connect(":memory:")
pagelog.load(boot)
pagelog.load(boot)
try:
    boot.execute("SELECT load_extension('nothing')")
    raise AssertionError("extension loading was left enabled")
except sqlite3.OperationalError as e:
    assert "not authorized" in str(e), e

path = os.path.join(d, "app.db")
db = sqlite3.connect("file:%s?vfs=pagelog" % path, uri=True, isolation_level=None)
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, data BLOB)")  # version 1
db.execute("INSERT INTO t VALUES (1, 'one', x'00ff')")  # 2
db.execute("BEGIN")
db.executemany("INSERT INTO t VALUES (?, ?, NULL)", [(i, "n%d" % i) for i in range(2, 12)])
db.execute("COMMIT")  # 3
db.execute("UPDATE t SET name = 'uno' WHERE id = 1")  # 4
db.execute("DELETE FROM t WHERE id = 2")  # 5
assert pagelog.current_version(db) == 5

# Versions, oldest first, with their facts.
vs = pagelog.versions(db)
assert [v.version for v in vs] == [1, 2, 3, 4, 5], vs
assert all(a.timestamp <= b.timestamp for a, b in zip(vs, vs[1:])), vs
assert vs[0].timestamp.tzinfo is not None
assert all(v.page_size == 4096 and v.db_pages >= 2 and v.pages_written >= 1 and v.bytes > 0 for v in vs), vs
assert vs[0].full_map is True

# Inside a transaction, the version it started on.
other = pagelog.connect(path, isolation_level=None)
other.execute("BEGIN")
other.execute("SELECT count(*) FROM t").fetchone()
db.execute("INSERT INTO t VALUES (100, 'late', NULL)")  # 6
assert pagelog.current_version(other) == 5
other.execute("COMMIT")
assert pagelog.current_version(other) == 6

# Diffs as Python objects: schema, then rows; BLOBs as bytes; both directions.
(c,) = pagelog.diff(db, 0, 1)
assert (c.table, c.kind, c.key, c.old, c.is_schema) == ("t", "create", {"type": "table"}, None, True), c
assert c.new.startswith("CREATE TABLE t("), c
(c,) = pagelog.diff(db, 1)  # b defaults to a + 1
assert (c.table, c.kind, c.key, c.old) == ("t", "insert", {"rowid": 1}, None), c
assert c.new == {"id": 1, "name": "one", "data": b"\x00\xff"}, c
assert not c.is_schema
assert len(pagelog.diff(db, 2, 3)) == 10
(c,) = pagelog.diff(db, 3, 4)
assert (c.kind, c.key, c.old, c.new) == ("update", {"rowid": 1}, {"name": "one"}, {"name": "uno"}), c
(c,) = pagelog.diff(db, 4, 5)
assert (c.kind, c.old, c.new) == ("delete", {"id": 2, "name": "n2", "data": None}, None), c
back = pagelog.diff(db, 5, 4)
assert [(c.kind, c.new) for c in back] == [("insert", {"id": 2, "name": "n2", "data": None})], back
assert pagelog.diff(db, 3, 3) == []
try:
    pagelog.diff(db, 1, 999)
    raise AssertionError("a missing version was accepted")
except sqlite3.Error as e:
    assert "999" in str(e), e

# One version, read-only, in place.
v3 = pagelog.connect(path, version=3)
assert v3.execute("SELECT name FROM t WHERE id = 1").fetchone() == ("one",)
assert v3.execute("SELECT count(*) FROM t").fetchone() == (11,)
assert pagelog.current_version(v3) == 3
try:
    v3.execute("INSERT INTO t VALUES (200, 'x', NULL)")
    raise AssertionError("a write to an old version was accepted")
except sqlite3.OperationalError as e:
    assert "readonly" in str(e), e
v0 = pagelog.connect(path, version=0)
assert v0.execute("SELECT count(*) FROM sqlite_schema").fetchone() == (0,)
for bad in (-1, "3", True):
    try:
        pagelog.connect(path, version=bad)
        raise AssertionError("version=%r was accepted" % (bad,))
    except ValueError:
        pass

# File names that need escaping in a URI, and one that is not UTF-8.
for name in ("a?b#c%d &e=f é.db", b"caf\xe9.db"):
    full = os.path.join(d.encode() if isinstance(name, bytes) else d, name)
    c = pagelog.connect(full, isolation_level=None)
    c.execute("CREATE TABLE x(y)")
    c.close()
    assert name in os.listdir(d.encode() if isinstance(name, bytes) else d), os.listdir(d)
    assert [v.version for v in pagelog.versions(pagelog.connect(full))] == [1]

# An attached database by schema name.
db.execute("ATTACH ? AS aux", (pagelog.uri(os.path.join(d, "aux.db")),))
db.execute("CREATE TABLE aux.z(q)")
db.execute("INSERT INTO aux.z VALUES (7)")
assert [v.version for v in pagelog.versions(db, "aux")] == [1, 2]
assert pagelog.current_version(db, "aux") == 2
assert [(c.kind, c.new) for c in pagelog.diff(db, 1, 2, schema="aux")] == [("insert", {"q": 7})]

# A database not opened through pagelog: an error that says so.
plain = sqlite3.connect(os.path.join(d, "plain.db"))
for call in (lambda: pagelog.versions(plain), lambda: pagelog.current_version(plain), lambda: pagelog.diff(plain, 0)):
    try:
        call()
        raise AssertionError("a plain database was read as a log")
    except sqlite3.Error as e:
        assert "not opened through the pagelog VFS" in str(e), e


# A sqlite3 module without extension loading (pyenv's, macOS's) has no
# enable_load_extension; stand in for one with a Connection that lacks it.
class NoLoading(sqlite3.Connection):
    enable_load_extension = None


try:
    pagelog.load(sqlite3.connect(":memory:", factory=NoLoading))
    raise AssertionError("loading without enable_load_extension did not fail")
except pagelog.ExtensionLoadingUnavailable as e:
    msg = str(e)
    assert "cannot load SQLite extensions" in msg and "/usr/bin/python3" in msg, msg
    assert "--enable-loadable-sqlite-extensions" in msg, msg

print("ok")
