#!/usr/bin/env bash
# Submits a spark-lora stage to Kubernetes, driver in a pod (cluster mode).
#   SPARK_LORA_IMAGE=registry.example.com/spark-lora:0.1.0 SPARK_LORA_UPLOAD_PATH=s3a://bucket/spark-uploads \
#     jobs/scripts/submit-kubernetes.sh train --config hdfs:///spark-lora/runs/x.yaml
# Environment (defaults in brackets):
#   SPARK_K8S_MASTER          API server [k8s://https://kubernetes.default.svc:443, i.e. from inside the cluster]
#   SPARK_LORA_NAMESPACE      namespace of the driver and executor pods [default]
#   SPARK_LORA_IMAGE          container image: Spark 3.5.3 on Java 17 (apache/spark:3.5.3-java17 or one built
#                             FROM it) [apache/spark:3.5.3-java17]
#   SPARK_LORA_SERVICE_ACCOUNT  service account the driver creates executor pods with [spark]
#   SPARK_LORA_UPLOAD_PATH    where spark-submit uploads the local jar for the pods (an HDFS/S3 directory);
#                             required unless SPARK_LORA_JAR is a local:///... path inside the image or a
#                             remote URI (hdfs://, s3a://)
#   and the common ones of jobs/scripts/lib.sh (SPARK_HOME, SPARK_LORA_JAR, SPARK_LORA_SUBMIT_ARGS, ...)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SPARK_LORA_DEFAULT_PROPERTIES="$SPARK_LORA_ROOT/conf/spark-kubernetes.conf"
SPARK_LORA_SCRIPT_HELP="environment:
  SPARK_K8S_MASTER            k8s://https://HOST:PORT [k8s://https://kubernetes.default.svc:443]
  SPARK_LORA_NAMESPACE        namespace [default]
  SPARK_LORA_IMAGE            image [apache/spark:3.5.3-java17]
  SPARK_LORA_SERVICE_ACCOUNT  driver's service account [spark]
  SPARK_LORA_UPLOAD_PATH      upload directory for a local jar (hdfs://..., s3a://...)"

parse_stage_args "$@"
resolve_jar

master="${SPARK_K8S_MASTER:-k8s://https://kubernetes.default.svc:443}"
case "$master" in
  k8s://*) ;;
  *) echo "$(basename "$0"): SPARK_K8S_MASTER must start with k8s://, got '$master'" >&2; exit 2 ;;
esac
opts=(--master "$master" --deploy-mode cluster
      --conf "spark.kubernetes.namespace=${SPARK_LORA_NAMESPACE:-default}"
      --conf "spark.kubernetes.container.image=${SPARK_LORA_IMAGE:-apache/spark:3.5.3-java17}"
      --conf "spark.kubernetes.authenticate.driver.serviceAccountName=${SPARK_LORA_SERVICE_ACCOUNT:-spark}")
case "$JAR" in
  *://*) ;;
  *)
    if [ -z "${SPARK_LORA_UPLOAD_PATH:-}" ]; then
      echo "$(basename "$0"): $JAR is a local file: set SPARK_LORA_UPLOAD_PATH (e.g. s3a://bucket/spark-uploads) so that" \
           "spark-submit can upload it for the pods, or set SPARK_LORA_JAR=local:///path/in/image.jar" >&2
      exit 2
    fi
    opts+=(--conf "spark.kubernetes.file.upload.path=$SPARK_LORA_UPLOAD_PATH") ;;
esac
run_submit "${opts[@]}"
