#!/usr/bin/env bash
# Set everything up and run lint + the tests (what .ci/run calls).
#   ./test.sh              the whole suite on the Spark 3.5 line, then the Spark 4 line's share (SPARK4_TESTS)
#   ./test.sh ARGS...      pytest ARGS on one line: BRONZE_SPARK=3.5 (the default) or BRONZE_SPARK=4
# The first run of a line sets it up (its .venv + jars from Maven Central); later runs are offline.
set -uo pipefail
cd "$(dirname "$0")"

# What CI runs on Spark 4 beside the whole suite on 3.5: end to end, corpus, crashes, ledger, change logs,
# Spark Connect and the routes without a driver JVM.
SPARK4_TESTS=(tests/test_e2e.py tests/test_corpus.py tests/test_crash.py tests/test_ledger.py tests/test_returns.py
  tests/test_connect.py tests/test_no_jvm.py)

one_line() {
  scripts/setup.sh || return 1
  . scripts/line.sh
  "$VENV/bin/ruff" check . || return 1
  "$VENV/bin/ruff" format --check . || return 1
  "$VENV/bin/python" -m pytest "$@"
  local rc=$?
  # pytest exit 5 = no tests collected: that is a failure here, never a silent pass.
  if [ "$rc" -eq 5 ]; then echo "test.sh: pytest collected no tests" >&2; return 1; fi
  return "$rc"
}

if [ "$#" -gt 0 ] || [ -n "${BRONZE_SPARK:-}" ]; then
  one_line "$@"
  exit $?
fi
echo "test.sh: Spark 3.5 line, the whole suite" >&2
(export BRONZE_SPARK=3.5; one_line --durations=25); rc35=$?
echo "test.sh: Spark 4 line: ${SPARK4_TESTS[*]}" >&2
(export BRONZE_SPARK=4; one_line --durations=15 "${SPARK4_TESTS[@]}"); rc4=$?
echo "test.sh: Spark 3.5 exit $rc35, Spark 4 exit $rc4" >&2
[ "$rc35" -eq 0 ] && [ "$rc4" -eq 0 ]
