#!/bin/bash
# Usage: speedtest/measure_open.sh BEFORE_LIB AFTER_LIB   (extension paths without .so)
# Paired, interleaved open timings through the stock sqlite3 shell: a build
# before a change against one after it, each on databases it wrote itself.
# Patterns: a = 256 MiB in one transaction; b = 2000 one-commit processes; c = 2000 commits in one process.
set -e
build() { # $1 lib stem, $2 dir
  L=$1; D=$2; rm -rf $D; mkdir -p $D; cd $D
  printf ".load $L\n.open file:a.db?vfs=pagelog\nCREATE TABLE t(id INTEGER PRIMARY KEY, b);\nWITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<250000) INSERT INTO t(b) SELECT randomblob(1000) FROM c;\n" | sqlite3
  printf ".load $L\n.open file:b.db?vfs=pagelog\nCREATE TABLE t(id INTEGER PRIMARY KEY, b);\n" | sqlite3
  for i in $(seq 2000); do printf ".load $L\n.open file:b.db?vfs=pagelog\nINSERT INTO t(b) VALUES(randomblob(1000));\n" | sqlite3; done
  ( printf ".load $L\n.open file:c.db?vfs=pagelog\nCREATE TABLE t(id INTEGER PRIMARY KEY, b);\n"; for i in $(seq 2000); do echo "INSERT INTO t(b) VALUES(randomblob(1000));"; done ) | sqlite3
}
BEFORE=$1; AFTER=$2
build $BEFORE /tmp/mo-before
build $AFTER /tmp/mo-after
sync
one() { # lib dir file -> microseconds
  s=$(date +%s%N); printf ".load $1\n.open file:$2/$3.db?vfs=pagelog\nSELECT length(b) FROM t WHERE id=500;\n" | sqlite3 >/dev/null; e=$(date +%s%N); echo $(( (e-s)/1000 ))
}
for f in a b c; do
  B=(); A=()
  for r in $(seq 11); do
    B+=($(one $BEFORE /tmp/mo-before $f)); A+=($(one $AFTER /tmp/mo-after $f))
  done
  echo "$f before us: $(printf '%s\n' "${B[@]}" | sort -n | tr '\n' ' ')"
  echo "$f after  us: $(printf '%s\n' "${A[@]}" | sort -n | tr '\n' ' ')"
done
ls -la /tmp/mo-before /tmp/mo-after
