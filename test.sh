#!/usr/bin/env bash
# Set everything up (first run: .venv + jars from Maven Central) and run lint + the whole test suite.
set -uo pipefail
cd "$(dirname "$0")"
scripts/setup.sh || exit 1
. scripts/line.sh
"$VENV/bin/ruff" check . || exit 1
"$VENV/bin/ruff" format --check . || exit 1
"$VENV/bin/python" -m pytest "$@"
rc=$?
# pytest exit 5 = no tests collected: that is a failure here, never a silent pass.
if [ "$rc" -eq 5 ]; then echo "test.sh: pytest collected no tests" >&2; exit 1; fi
exit "$rc"
