"""A PEP 517 build backend for the pagelog Python package, standard library only.

Why not setuptools or maturin: both need packages that a fresh virtualenv
does not have (setuptools before 70.1 needs `wheel` to build one; maturin
is a download), so `pip install ./python` would need the network. This
backend needs nothing: it zips `pagelog/` and the loadable extension into a
wheel.

The extension comes from, in this order:
  * `pip install ./python -C library=PATH` (pip's --config-settings),
  * the environment variable PAGELOG_LIBRARY=PATH,
  * `cargo build --release -p pagelog --lib` in the repository that holds
    this directory (the repository's Cargo.toml is found above python/).

The wheel is tagged `py3-none-<platform>`: the extension talks to SQLite
through the routines SQLite hands it, not to Python, so one wheel serves
every Python 3 of that platform. Only `build_wheel` (and what pip asks
before it) is provided; no sdist, no editable install.
"""

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # python/
PACKAGE = "pagelog"
LIBRARY = "libpagelog.so"


class BuildError(Exception):
    pass


def _project():
    """name, version, description, requires-python from pyproject.toml's [project]."""
    with open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not section:
        raise BuildError("pyproject.toml has no [project] table")
    fields = dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]*)"\s*$', section.group(1), re.M))
    for key in ("name", "version"):
        if key not in fields:
            raise BuildError("pyproject.toml: [project] has no %s" % key)
    return fields


def _tag():
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "py3-none-" + plat


def _cargo_build():
    """Builds the release extension with cargo; returns its path."""
    root = os.path.dirname(HERE)
    if not os.path.exists(os.path.join(root, "Cargo.toml")):
        raise BuildError(
            "%s is not inside the pagelog repository (no Cargo.toml in %s): build libpagelog.so "
            "there with `cargo build --release -p pagelog` and pass it with "
            "PAGELOG_LIBRARY=/path/to/libpagelog.so" % (HERE, root)
        )
    cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
    if not os.path.exists(cargo):
        raise BuildError(
            "cargo not found: install Rust (https://rustup.rs) to build libpagelog.so, "
            "or pass a built one with PAGELOG_LIBRARY=/path/to/libpagelog.so"
        )
    cmd = [cargo, "build", "--release", "-p", "pagelog", "--lib", "--message-format=json-render-diagnostics"]
    sys.stderr.write("pagelog: building the extension: %s (in %s)\n" % (" ".join(cmd[1:]), root))
    proc = subprocess.run(cmd, cwd=root, stdout=subprocess.PIPE)
    if proc.returncode != 0:
        raise BuildError("`cargo build --release -p pagelog` failed (exit %d), see above" % proc.returncode)
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "pagelog":
            for f in msg.get("filenames", []):
                if f.endswith(".so"):
                    return f
    raise BuildError("cargo built pagelog but reported no %s" % LIBRARY)


def _library(config_settings):
    path = (config_settings or {}).get("library") or os.environ.get("PAGELOG_LIBRARY")
    if path:
        if not os.path.isfile(path):
            raise BuildError("the pagelog extension %r does not exist (from -C library= or PAGELOG_LIBRARY)" % path)
        return path
    return _cargo_build()


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [arcname, "sha256=" + digest, str(len(data))]


def _metadata(p):
    lines = ["Metadata-Version: 2.1", "Name: " + p["name"], "Version: " + p["version"]]
    if "description" in p:
        lines.append("Summary: " + p["description"])
    if "requires-python" in p:
        lines.append("Requires-Python: " + p["requires-python"])
    if "license" in p:
        lines.append("License: " + p["license"])
    return "\n".join(lines) + "\n"


# PEP 517 hooks ---------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    try:
        p = _project()
        lib = _library(config_settings)
    except BuildError as e:
        sys.stderr.write("pagelog: error: %s\n" % e)
        raise SystemExit(1)
    dist = "%s-%s" % (p["name"], p["version"])
    files = []
    src = os.path.join(HERE, PACKAGE)
    for name in sorted(os.listdir(src)):
        if name.endswith(".py") or name == "py.typed":
            with open(os.path.join(src, name), "rb") as f:
                files.append(("%s/%s" % (PACKAGE, name), f.read()))
    with open(lib, "rb") as f:
        files.append(("%s/%s" % (PACKAGE, LIBRARY), f.read()))
    info = dist + ".dist-info"
    files.append((info + "/METADATA", _metadata(p).encode()))
    wheel = "Wheel-Version: 1.0\nGenerator: pagelog_wheel\nRoot-Is-Purelib: false\nTag: %s\n" % _tag()
    files.append((info + "/WHEEL", wheel.encode()))

    record = io.StringIO()
    w = csv.writer(record, lineterminator="\n")
    for arcname, data in files:
        w.writerow(_record_line(arcname, data))
    w.writerow([info + "/RECORD", "", ""])

    filename = "%s-%s.whl" % (dist, _tag())
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in files:
            zi = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            # rw-r--r--, and the extension executable as a shared library usually is
            zi.external_attr = (0o755 if arcname.endswith(".so") else 0o644) << 16
            z.writestr(zi, data)
        z.writestr(zipfile.ZipInfo(info + "/RECORD", date_time=(2020, 1, 1, 0, 0, 0)), record.getvalue())
    return filename
