#!/usr/bin/env bash
# Submits a spark-lora stage to Hadoop YARN, driver in the application master (cluster mode).
#   SPARK_LORA_QUEUE=ml jobs/scripts/submit-yarn.sh train --config hdfs:///spark-lora/runs/x.yaml
# Environment (defaults in brackets):
#   HADOOP_CONF_DIR or YARN_CONF_DIR   the cluster's client configuration (required)
#   SPARK_LORA_QUEUE         YARN queue [default]
#   SPARK_DEPLOY_MODE        cluster | client [cluster]
#   SPARK_LORA_EXECUTORS     number of executors (--num-executors) [spark.executor.instances of the conf: 4]
#   and the common ones of jobs/scripts/lib.sh (SPARK_HOME, SPARK_LORA_JAR, SPARK_LORA_SUBMIT_ARGS, ...)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SPARK_LORA_DEFAULT_PROPERTIES="$SPARK_LORA_ROOT/conf/spark-yarn.conf"
SPARK_LORA_SCRIPT_HELP="environment:
  HADOOP_CONF_DIR/YARN_CONF_DIR  the cluster's client configuration (required)
  SPARK_LORA_QUEUE            YARN queue [default]
  SPARK_DEPLOY_MODE           cluster | client [cluster]
  SPARK_LORA_EXECUTORS        --num-executors [4, from the conf]"

parse_stage_args "$@"
resolve_jar

if [ -z "${HADOOP_CONF_DIR:-}" ] && [ -z "${YARN_CONF_DIR:-}" ]; then
  echo "$(basename "$0"): set HADOOP_CONF_DIR (or YARN_CONF_DIR) to the cluster's client configuration" >&2
  exit 2
fi
deploy_mode="${SPARK_DEPLOY_MODE:-cluster}"
case "$deploy_mode" in cluster|client) ;; *) echo "$(basename "$0"): SPARK_DEPLOY_MODE must be cluster or client" >&2; exit 2 ;; esac
opts=(--master yarn --deploy-mode "$deploy_mode" --queue "${SPARK_LORA_QUEUE:-default}")
if [ -n "${SPARK_LORA_EXECUTORS:-}" ]; then opts+=(--num-executors "$SPARK_LORA_EXECUTORS"); fi
run_submit "${opts[@]}"
