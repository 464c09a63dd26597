# Shared by the submit-*.sh scripts (sourced, not run). Parses "STAGE --config URI [job options]" and runs
# spark-submit with the stage's entry point, a properties file from conf/ and the shaded jar.
#
# Environment common to all scripts:
#   SPARK_HOME              Spark 3.5 installation; spark-submit is taken from $SPARK_HOME/bin, else from PATH
#   SPARK_SUBMIT            the spark-submit command itself (default: $SPARK_HOME/bin/spark-submit or spark-submit)
#   SPARK_LORA_JAR          the application jar (default: jobs/target/spark-lora-jobs.jar of this checkout;
#                           any URI spark-submit accepts: hdfs://..., local:///... inside an image)
#   SPARK_LORA_PROPERTIES   the --properties-file (default: the script's conf/spark-*.conf)
#   SPARK_LORA_SUBMIT_ARGS  extra spark-submit options, split on blanks
#                           (e.g. "--conf spark.executor.instances=8 --conf spark.executor.memory=24g")

SPARK_LORA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SPARK_LORA_STAGES="tokenize | train | lora-drop | evaluate | pipeline"

usage() {
  local me
  me="$(basename "$0")"
  cat >&2 <<USAGE
usage: $me STAGE --config URI [job options...]

  STAGE     $SPARK_LORA_STAGES
  --config  the pipeline YAML, e.g. hdfs:///spark-lora/runs/x.yaml (read by the driver)
  job options are passed on to the job: --output URI, --fresh

$SPARK_LORA_SCRIPT_HELP
  SPARK_HOME / SPARK_SUBMIT   where spark-submit is (default: \$SPARK_HOME/bin/spark-submit, else PATH)
  SPARK_LORA_JAR              application jar (default: jobs/target/spark-lora-jobs.jar)
  SPARK_LORA_PROPERTIES       properties file (default: $SPARK_LORA_DEFAULT_PROPERTIES)
  SPARK_LORA_SUBMIT_ARGS      extra spark-submit options, e.g. "--conf spark.executor.instances=8"
USAGE
}

# stage name -> entry point class
stage_class() {
  case "$1" in
    tokenize) echo io.sparklora.jobs.TokenizeJob ;;
    train) echo io.sparklora.jobs.TrainJob ;;
    lora-drop) echo io.sparklora.jobs.LoraDropJob ;;
    evaluate) echo io.sparklora.jobs.EvaluateJob ;;
    pipeline) echo io.sparklora.jobs.PipelineJob ;;
    *) return 1 ;;
  esac
}

# Sets STAGE, MAIN_CLASS and JOB_ARGS from the script's arguments, or prints the usage and exits 2.
parse_stage_args() {
  if [ $# -eq 0 ]; then usage; exit 2; fi
  case "$1" in -h|--help|help) usage; exit 0 ;; esac
  STAGE="$1"; shift
  if ! MAIN_CLASS="$(stage_class "$STAGE")"; then
    echo "$(basename "$0"): unknown stage '$STAGE' (expected $SPARK_LORA_STAGES)" >&2
    usage; exit 2
  fi
  local have_config=0 prev=""
  for a in "$@"; do
    case "$a" in
      --config=?*) have_config=1 ;;
      --config) ;;
      *) if [ "$prev" = "--config" ] && [ -n "$a" ] && [ "${a#--}" = "$a" ]; then have_config=1; fi ;;
    esac
    prev="$a"
  done
  if [ "$have_config" -ne 1 ]; then
    echo "$(basename "$0"): $STAGE needs --config URI (the pipeline YAML, e.g. hdfs:///spark-lora/runs/x.yaml)" >&2
    usage; exit 2
  fi
  JOB_ARGS=("$@")
}

# The jar to submit; a plain path must exist (build it first).
resolve_jar() {
  JAR="${SPARK_LORA_JAR:-$SPARK_LORA_ROOT/jobs/target/spark-lora-jobs.jar}"
  case "$JAR" in
    *://*) ;;
    *)
      if [ ! -f "$JAR" ]; then
        echo "$(basename "$0"): $JAR not found; build it with: (cd $SPARK_LORA_ROOT && mvn -B -DskipTests package)${1:+ $1}" >&2
        exit 1
      fi ;;
  esac
}

# Runs spark-submit: --class for the stage, the properties file, the given options, SPARK_LORA_SUBMIT_ARGS,
# the jar and the job's arguments. Prints the command first.
run_submit() {
  local submit="${SPARK_SUBMIT:-${SPARK_HOME:+$SPARK_HOME/bin/}spark-submit}"
  local props="${SPARK_LORA_PROPERTIES:-$SPARK_LORA_DEFAULT_PROPERTIES}"
  if [ ! -f "$props" ]; then echo "$(basename "$0"): properties file $props not found" >&2; exit 1; fi
  local extra=()
  if [ -n "${SPARK_LORA_SUBMIT_ARGS:-}" ]; then read -r -a extra <<< "$SPARK_LORA_SUBMIT_ARGS"; fi
  local cmd=("$submit" --class "$MAIN_CLASS" --name "spark-lora $STAGE" --properties-file "$props" "$@" ${extra[@]+"${extra[@]}"} "$JAR" ${JOB_ARGS[@]+"${JOB_ARGS[@]}"})
  echo "+ ${cmd[*]}" >&2
  exec "${cmd[@]}"
}
