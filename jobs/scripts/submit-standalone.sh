#!/usr/bin/env bash
# Submits a spark-lora stage to a Spark standalone cluster, the driver in this process (client mode, the
# default) or on a worker (cluster mode: --deploy-mode cluster before the stage, or SPARK_DEPLOY_MODE=cluster).
#   jobs/scripts/submit-standalone.sh [--deploy-mode client|cluster] train --config hdfs:///spark-lora/runs/x.yaml [--output URI] [--fresh]
# Before submitting, the master's web UI (/json/) is asked what each alive worker offers; an application no
# worker can host (spark.executor.cores, spark.executor.memory, spark.task.cpus of the properties file and
# SPARK_LORA_SUBMIT_ARGS) fails here with a message naming both, instead of waiting for resources forever.
# Environment (defaults in brackets):
#   SPARK_MASTER        standalone master URL [spark://localhost:7077]
#   SPARK_MASTER_WEBUI  the master's web UI [http://MASTER-HOST:8080]
#   SPARK_DEPLOY_MODE   client | cluster [client]
#   SPARK_DRIVER_HOST   (client mode) address executors use to reach this driver [hostname -f]
#   SPARK_TOTAL_CORES   cores the application may take in all (--total-executor-cores) [all the cluster offers]
#   SPARK_LORA_WAIT     (cluster mode) wait for the driver to finish and exit with its status [true]
#   SPARK_LORA_CHECK_FIT  0: skip the resource check [1]
#   and the common ones of jobs/scripts/lib.sh (SPARK_HOME, SPARK_LORA_JAR, SPARK_LORA_SUBMIT_ARGS, ...)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SPARK_LORA_DEFAULT_PROPERTIES="$SPARK_LORA_ROOT/conf/spark-standalone.conf"
SPARK_LORA_SCRIPT_HELP="options before STAGE:
  --deploy-mode client|cluster  where the driver runs [\$SPARK_DEPLOY_MODE or client]

environment:
  SPARK_MASTER                standalone master [spark://localhost:7077]
  SPARK_MASTER_WEBUI          the master's web UI, for the resource check [http://MASTER-HOST:8080]
  SPARK_DEPLOY_MODE           client | cluster [client]
  SPARK_DRIVER_HOST           (client) this machine's address as executors see it [hostname -f]
  SPARK_TOTAL_CORES           --total-executor-cores [all]
  SPARK_LORA_WAIT             (cluster) wait for the driver and exit with its status [true]
  SPARK_LORA_CHECK_FIT        0: do not check that executors fit on a worker [1]"

deploy_mode="${SPARK_DEPLOY_MODE:-client}"
case "${1:-}" in
  --deploy-mode) deploy_mode="${2:-}"; shift 2 || { usage; exit 2; } ;;
  --deploy-mode=*) deploy_mode="${1#--deploy-mode=}"; shift ;;
esac
case "$deploy_mode" in
  client|cluster) ;;
  *) echo "$(basename "$0"): --deploy-mode must be client or cluster, got '$deploy_mode'" >&2; exit 2 ;;
esac

parse_stage_args "$@"
resolve_jar

master="${SPARK_MASTER:-spark://localhost:7077}"
case "$master" in
  spark://*) ;;
  *) echo "$(basename "$0"): SPARK_MASTER must be a spark://HOST:PORT URL, got '$master'" >&2; exit 2 ;;
esac
webui="${SPARK_MASTER_WEBUI:-}"
if [ -z "$webui" ]; then
  first="${master#spark://}"; first="${first%%,*}"
  webui="http://${first%:*}:8080"
fi
opts=(--master "$master" --deploy-mode "$deploy_mode" --conf "spark.lora.masterWebUi=$webui")
if [ "$deploy_mode" = client ]; then
  driver_host="${SPARK_DRIVER_HOST:-$(hostname -f 2>/dev/null || hostname)}"
  opts+=(--conf "spark.driver.host=$driver_host" --conf "spark.driver.bindAddress=0.0.0.0")
else
  # the driver runs on a worker, which fetches the jar itself: a local path must exist there too (one machine,
  # or a shared file system); the pipeline's paths must be ones the worker can reach (absolute, or HDFS)
  opts+=(--conf "spark.standalone.submit.waitAppCompletion=${SPARK_LORA_WAIT:-true}")
fi
if [ -n "${SPARK_TOTAL_CORES:-}" ]; then opts+=(--total-executor-cores "$SPARK_TOTAL_CORES"); fi
check_standalone_fit "$master" "$webui" "${opts[@]}"
run_submit "${opts[@]}"
