#!/usr/bin/env bash
# Submits a spark-lora stage to a Spark standalone cluster, driver in this process (client mode).
#   jobs/scripts/submit-standalone.sh train --config hdfs:///spark-lora/runs/x.yaml [--output URI] [--fresh]
# Environment (defaults in brackets):
#   SPARK_MASTER        standalone master URL [spark://localhost:7077]
#   SPARK_DRIVER_HOST   address executors use to reach this driver [hostname -f]
#   SPARK_TOTAL_CORES   cores the application may take in all (--total-executor-cores) [all the cluster offers]
#   and the common ones of jobs/scripts/lib.sh (SPARK_HOME, SPARK_LORA_JAR, SPARK_LORA_SUBMIT_ARGS, ...)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SPARK_LORA_DEFAULT_PROPERTIES="$SPARK_LORA_ROOT/conf/spark-standalone.conf"
SPARK_LORA_SCRIPT_HELP="environment:
  SPARK_MASTER                standalone master [spark://localhost:7077]
  SPARK_DRIVER_HOST           this machine's address as executors see it [hostname -f]
  SPARK_TOTAL_CORES           --total-executor-cores [all]"

parse_stage_args "$@"
resolve_jar

master="${SPARK_MASTER:-spark://localhost:7077}"
case "$master" in
  spark://*) ;;
  *) echo "$(basename "$0"): SPARK_MASTER must be a spark://HOST:PORT URL, got '$master'" >&2; exit 2 ;;
esac
driver_host="${SPARK_DRIVER_HOST:-$(hostname -f 2>/dev/null || hostname)}"
opts=(--master "$master" --deploy-mode client
      --conf "spark.driver.host=$driver_host" --conf "spark.driver.bindAddress=0.0.0.0")
if [ -n "${SPARK_TOTAL_CORES:-}" ]; then opts+=(--total-executor-cores "$SPARK_TOTAL_CORES"); fi
run_submit "${opts[@]}"
