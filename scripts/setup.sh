#!/usr/bin/env bash
# Idempotent set-up on a fresh machine with Python 3.11 and Java 17:
#   1. a project-local virtualenv (.venv; BRONZE_SPARK=4: .venv-spark4) with every Python package pinned
#      (requirements.lock; requirements-spark4.lock),
#   2. the JVM jars (Delta, spark-excel) resolved once from Maven Central into .ivy2/ inside the project.
# A second run does nothing and needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/line.sh

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
command -v java >/dev/null 2>&1 || { echo "setup: java not found; install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)" >&2; exit 2; }

stamp=$VENV/.installed-$(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip==24.3.1
  "$VENV/bin/python" -m pip install -q -c "$LOCK" -e ".[$EXTRAS]"
  # duckdb-cli's wheel installs the binary without the execute bit.
  chmod +x "$VENV/bin/duckdb"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

"$VENV/bin/python" -m bronze.jars --ensure >/dev/null
