#!/usr/bin/python3
"""Compares spec_reader.py with the real pagelog on log files.

    compare.py [--expected EXPECTED] FILE...

For each file (copied to a scratch directory first; the given file is never
opened by pagelog) it runs
  * spec_reader.examine,
  * open_latest.rs (pagelog's `Log::open` read-only, then `refresh`: what the
    corpus manifest's `opens N` / `refused` means; `info` also reads the
    whole history and fails on more files; and every version's database
    image through `Log::version`, compared with the reader's "pages"), compiled with rustc against
    target/debug/libpagelog.rlib on first use (into $TMPDIR),
  * `target/debug/pagelog info --json`, `log --json` and `verify` (exit code),
and prints one JSON line per file: both sides' outcome and the fields on
which they differ ("diff").  With --expected, the manifest line
(`NAME opens N [clean|damaged]` / `NAME refused [...]`) is compared too.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import spec_reader  # noqa: E402

# PAGELOG_TARGET: another build's target/debug (its `pagelog` and libpagelog.rlib; deps in its deps/).
TARGET = os.environ.get("PAGELOG_TARGET", os.path.join(ROOT, "target/debug"))
TOOL = os.path.join(TARGET, "pagelog")
OPEN_LATEST = os.path.join(tempfile.gettempdir(), "pagelog-spec-reader-open-latest-%08x" % zlib.crc32(TARGET.encode()))


def open_latest():
    src = os.path.join(HERE, "open_latest.rs")
    rlib = os.path.join(TARGET, "libpagelog.rlib")
    if not os.path.exists(OPEN_LATEST) or os.path.getmtime(OPEN_LATEST) < os.path.getmtime(rlib):
        subprocess.run(["rustc", "--edition", "2021", "-O", src, "--extern", "pagelog=" + rlib,
                        "-L", os.path.join(TARGET, "deps"), "-o", OPEN_LATEST], check=True)
    return OPEN_LATEST


def run(args, cwd):
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def tool_outcome(path):
    tmp = tempfile.mkdtemp(prefix="spec-reader-")
    try:
        f = os.path.join(tmp, "x.log")
        shutil.copyfile(path, f)
        out = {}
        rc, so, se = run([open_latest(), "--pages", "x.log"], tmp)
        s = so.strip()
        if s.startswith("opens "):
            out["opens"], out["latest"] = True, int(s.split()[1])
            # Every version 1..latest as `Log::version` reads it (image crc, reclaimed, none, error).
            out["pages"] = {int(k): v for k, v in (w.split(":") for w in s.split()[2:])}
        else:
            out["opens"], out["latest"] = False, None
            out["open_error"] = (s + se.strip())[:300]
        # info and log print what can be read also from a damaged log (exit 1).
        rc, so, se = run([TOOL, "info", "x.log", "--json"], tmp)
        info = json.loads(so) if so.strip() else None
        out["info_latest"] = info["latest_version"] if info else None
        out["info_refused"] = bool(info and info["recovery_error"])
        if rc != 0:
            out["info_error"] = se.strip()[:300]
        rc, so, se = run([TOOL, "log", "x.log", "--json"], tmp)
        out["log"] = ({v["version"]: v["checksum"] for v in json.loads(so)} if so.strip() else None)
        out["log_exit"] = rc
        rc, so, se = run([TOOL, "verify", "x.log"], tmp)
        out["verify"] = {0: "clean", 1: "damaged"}.get(rc, "exit %d" % rc)
        if rc != 0:
            out["verify_msg"] = (so.strip().splitlines() or [""])[-1][:300] + se.strip()[:300]
        with open(f, "rb") as a, open(path, "rb") as b:
            if a.read() != b.read():
                out["modified"] = True
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(path, expected=None):
    with open(path, "rb") as fh:
        mine = spec_reader.examine(fh.read())
    tool = tool_outcome(path)
    diff = []
    if (mine["opens"], mine["latest"]) != (tool["opens"], tool["latest"]):
        diff.append("open")
    # info's latest: recovery's, or (recovery refused) the newest version readable.
    if tool["info_latest"] is not None and tool["info_latest"] != (
            max(mine["readable"], default=0) if tool["info_refused"] else mine["latest"]):
        diff.append("info")
    if mine["verify"] != tool["verify"]:
        diff.append("verify")
    if mine["opens"] and tool["opens"] and mine.get("pages", {}) != tool.get("pages", {}):
        # Every version's database image, read through the control state (format 4).
        diff.append("pages")
    if tool["log"] is not None or mine["readable"]:
        # "Reading a damaged log": `pagelog log` lists the versions a reader may
        # read, and exits 1 when it met damage.
        if sorted(tool["log"] or {}) != mine["readable"]:
            diff.append("readable")
        if tool["log_exit"] != (1 if mine["damage_met"] else 0):
            diff.append("log_exit")
        ours = mine.get("readable_checksums", {})
        computed = {v["version"]: v["checksum"] for v in mine["versions"] if "error" not in v}
        if any(ours.get(v) != c for v, c in (tool["log"] or {}).items()):
            diff.append("log")
        elif tool["verify"] == "clean" and computed != {v: (tool["log"] or {}).get(v) for v in computed}:
            # A checksum the reader computes from the page map that differs from
            # the stored one, on a log pagelog's verify calls clean.
            diff.append("checksum")
    if expected is not None:
        e = expected.split()
        want_open = e[0] == "opens"
        want_latest = int(e[1]) if want_open else None
        want_verify = e[-1] if e[-1] in ("clean", "damaged") else None
        if (mine["opens"], mine["latest"]) != (want_open, want_latest) or (
                want_verify is not None and mine["verify"] != want_verify):
            diff.append("expected")
    return {"file": path, "diff": diff, "reader": mine, "tool": tool, "expected": expected}


def main(argv):
    expected = {}
    files = []
    i = 1
    while i < len(argv):
        if argv[i] == "--expected":
            with open(argv[i + 1]) as f:
                for line in f:
                    if line.strip() and not line.startswith("#"):
                        name, rest = line.split(None, 1)
                        expected[name] = rest.strip()
            i += 2
        else:
            files.append(argv[i])
            i += 1
    bad = 0
    for path in files:
        r = compare(path, expected.get(os.path.basename(path)) if expected else None)
        r["reader"].pop("versions", None)
        if "pages" not in r["diff"]:
            r["reader"].pop("pages", None)
            r["tool"].pop("pages", None)
        r["reader"].pop("readable_checksums", None)
        bad += bool(r["diff"])
        print(json.dumps(r, sort_keys=True), flush=True)
    sys.stderr.write("%d files, %d with a difference\n" % (len(files), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
