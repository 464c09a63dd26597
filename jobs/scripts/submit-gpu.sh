#!/usr/bin/env bash
# Submits a spark-lora stage to GPU executors, one GPU per task (conf/spark-gpu.conf), on a standalone,
# YARN or Kubernetes cluster; the jar must be built with the CUDA backend: mvn -B -Pcuda -DskipTests package
# (jobs/target/cuda/spark-lora-jobs-cuda.jar, the default here).
#   SPARK_MASTER=yarn SPARK_LORA_QUEUE=gpu jobs/scripts/submit-gpu.sh train --config hdfs:///spark-lora/runs/x.yaml
# Environment (defaults in brackets):
#   SPARK_MASTER      spark://HOST:PORT | yarn | k8s://https://HOST:PORT [yarn]
#   standalone:  SPARK_DRIVER_HOST [hostname -f]; the WORKERS must be started with
#                spark.worker.resource.gpu.amount and spark.worker.resource.gpu.discoveryScript (docs/CLUSTER.md)
#   YARN:        HADOOP_CONF_DIR or YARN_CONF_DIR (required), SPARK_LORA_QUEUE [default]; the discovery script
#                is shipped with --files
#   Kubernetes:  SPARK_LORA_NAMESPACE [default], SPARK_LORA_IMAGE [spark-lora-cuda:latest: an image with the
#                CUDA 11.6 runtime, Java 17, Spark 3.5.3 and conf/gpu/discover-gpus.sh], SPARK_LORA_SERVICE_ACCOUNT
#                [spark], SPARK_LORA_GPU_DISCOVERY (the script's path in the image)
#                [/opt/spark-lora/conf/gpu/discover-gpus.sh], SPARK_LORA_UPLOAD_PATH (for a local jar)
#   and the common ones of jobs/scripts/lib.sh (SPARK_HOME, SPARK_LORA_JAR, SPARK_LORA_SUBMIT_ARGS, ...)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SPARK_LORA_DEFAULT_PROPERTIES="$SPARK_LORA_ROOT/conf/spark-gpu.conf"
SPARK_LORA_DEFAULT_JAR="$SPARK_LORA_ROOT/jobs/target/cuda/spark-lora-jobs-cuda.jar"
SPARK_LORA_SCRIPT_HELP="environment:
  SPARK_MASTER                spark://HOST:PORT | yarn | k8s://https://HOST:PORT [yarn]
  SPARK_DRIVER_HOST           (standalone) this machine's address [hostname -f]
  HADOOP_CONF_DIR, SPARK_LORA_QUEUE   (YARN) client configuration (required), queue [default]
  SPARK_LORA_NAMESPACE, SPARK_LORA_IMAGE, SPARK_LORA_SERVICE_ACCOUNT, SPARK_LORA_GPU_DISCOVERY,
  SPARK_LORA_UPLOAD_PATH      (Kubernetes) [default, spark-lora-cuda:latest, spark,
                              /opt/spark-lora/conf/gpu/discover-gpus.sh, none]"

parse_stage_args "$@"
resolve_jar "-Pcuda"

# A jar built without -Pcuda runs, but on the executors' CPUs: say so before the cluster is tied up.
case "$JAR" in
  *://*) ;;
  *)
    if command -v unzip >/dev/null 2>&1 && ! unzip -l "$JAR" 'org/nd4j/linalg/jcublas/JCublasBackend.class' >/dev/null 2>&1; then
      echo "$(basename "$0"): warning: $JAR has no ND4J CUDA backend (built without -Pcuda); tasks will hold a GPU but compute on the CPU" >&2
    fi ;;
esac

master="${SPARK_MASTER:-yarn}"
discovery="$SPARK_LORA_ROOT/conf/gpu/discover-gpus.sh"
case "$master" in
  spark://*)
    driver_host="${SPARK_DRIVER_HOST:-$(hostname -f 2>/dev/null || hostname)}"
    opts=(--master "$master" --deploy-mode client
          --conf "spark.driver.host=$driver_host" --conf "spark.driver.bindAddress=0.0.0.0") ;;
  yarn)
    if [ -z "${HADOOP_CONF_DIR:-}" ] && [ -z "${YARN_CONF_DIR:-}" ]; then
      echo "$(basename "$0"): set HADOOP_CONF_DIR (or YARN_CONF_DIR) to the cluster's client configuration" >&2
      exit 2
    fi
    # the executors run the script in their container: ship it, YARN puts it in the working directory
    opts=(--master yarn --deploy-mode cluster --queue "${SPARK_LORA_QUEUE:-default}"
          --files "$discovery"
          --conf "spark.executor.resource.gpu.discoveryScript=./discover-gpus.sh") ;;
  k8s://*)
    # executors run the script at start-up, before --files arrive: it must be in the image
    opts=(--master "$master" --deploy-mode cluster
          --conf "spark.kubernetes.namespace=${SPARK_LORA_NAMESPACE:-default}"
          --conf "spark.kubernetes.container.image=${SPARK_LORA_IMAGE:-spark-lora-cuda:latest}"
          --conf "spark.kubernetes.authenticate.driver.serviceAccountName=${SPARK_LORA_SERVICE_ACCOUNT:-spark}"
          --conf "spark.executor.resource.gpu.discoveryScript=${SPARK_LORA_GPU_DISCOVERY:-/opt/spark-lora/conf/gpu/discover-gpus.sh}")
    case "$JAR" in
      *://*) ;;
      *)
        if [ -z "${SPARK_LORA_UPLOAD_PATH:-}" ]; then
          echo "$(basename "$0"): $JAR is a local file: set SPARK_LORA_UPLOAD_PATH or SPARK_LORA_JAR=local:///path/in/image.jar" >&2
          exit 2
        fi
        opts+=(--conf "spark.kubernetes.file.upload.path=$SPARK_LORA_UPLOAD_PATH") ;;
    esac ;;
  *)
    echo "$(basename "$0"): SPARK_MASTER must be spark://..., yarn or k8s://..., got '$master'" >&2
    exit 2 ;;
esac
run_submit "${opts[@]}"
