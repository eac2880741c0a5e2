#!/usr/bin/env bash
# Run the bronze job: ./spark-submit.sh [job args]  (see jobs/bronze.py or --help for the job's options).
# Sets everything up on first use (.venv, jars cached in .ivy2/), then calls the spark-submit that pyspark
# ships (a system spark-submit, if any, is not used) with the jars, the package zip and the required confs.
# Extra spark-submit options: BRONZE_SPARK_ARGS="--master spark://host:7077 --driver-memory 2g".
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
"$HERE/scripts/setup.sh"
. "$HERE/scripts/line.sh"
PY="$HERE/$VENV/bin/python"
JARS=$("$PY" -m bronze.jars --ensure --for-args "$@")
# The package for executors (--py-files): bronze and schemas, named by content (safe for concurrent starts).
ZIP=$("$PY" "$HERE/scripts/package_zip.py" "$HERE")
export PYSPARK_PYTHON="$PY" PYSPARK_DRIVER_PYTHON="$PY"
EXTRA=(${BRONZE_SPARK_ARGS:-})
# Spark's stage progress bar only on a terminal: in a log file it is noise.
PROGRESS=false
[ -t 2 ] && PROGRESS=true
MASTER=()
[[ " ${EXTRA[*]:-} " == *" --master "* ]] || MASTER=(--master "local[*]")
exec "$HERE/$VENV/bin/spark-submit" \
  "${MASTER[@]}" \
  --jars "$JARS" \
  --py-files "$ZIP" \
  --conf spark.sql.session.timeZone=UTC \
  --conf spark.sql.legacy.timeParserPolicy=CORRECTED \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  --conf spark.ui.showConsoleProgress="$PROGRESS" \
  --conf spark.databricks.delta.snapshotPartitions=8 \
  --driver-java-options "-Dlog4j2.configurationFile=file:$HERE/conf/log4j2.properties" \
  "${EXTRA[@]}" \
  "$HERE/jobs/bronze.py" "$@"
