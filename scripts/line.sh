# Sourced by setup.sh, spark-submit.sh and test.sh: BRONZE_SPARK picks the Spark line (3.5, the default, or 4).
# Each line has its own virtualenv, lock file and jar cache (.ivy2/ or .ivy2-spark4/, chosen by bronze.jars).
case "${BRONZE_SPARK:-3.5}" in
  3.5) VENV=.venv; LOCK=requirements.lock; EXTRAS=local,dev ;;
  4) VENV=.venv-spark4; LOCK=requirements-spark4.lock; EXTRAS=local4,dev ;;
  *) echo "BRONZE_SPARK: expected 3.5 or 4, found '${BRONZE_SPARK}'" >&2; exit 2 ;;
esac
