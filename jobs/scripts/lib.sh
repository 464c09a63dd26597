# Shared by the submit-*.sh scripts (sourced, not run). Parses "STAGE --config URI [job options]" and runs
# spark-submit with the stage's entry point, a properties file from conf/ and the shaded jar.
#
# Environment common to all scripts:
#   SPARK_HOME              Spark 3.5 installation; spark-submit is taken from $SPARK_HOME/bin, else from PATH,
#                           else Spark's SparkSubmit class is run with java on this checkout's Spark class path
#                           (jobs/target/spark-classpath.txt, or SPARK_LORA_SPARK_CLASSPATH)
#   SPARK_SUBMIT            the spark-submit command itself (default: as above)
#   SPARK_LORA_LOG4J        Log4j 2 configuration of the driver and executors (default: conf/log4j2.properties,
#                           warnings only; shipped with --files)
#   SPARK_LORA_JAR          the application jar (default: jobs/target/spark-lora-jobs.jar of this checkout, for
#                           submit-gpu.sh jobs/target/cuda/spark-lora-jobs-cuda.jar;
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
  SPARK_HOME / SPARK_SUBMIT   where spark-submit is (default: \$SPARK_HOME/bin/spark-submit, else PATH, else
                              java org.apache.spark.deploy.SparkSubmit on jobs/target/spark-classpath.txt)
  SPARK_LORA_LOG4J            Log4j 2 configuration (default: conf/log4j2.properties, warnings only)
  SPARK_LORA_JAR              application jar (default: ${SPARK_LORA_DEFAULT_JAR:-$SPARK_LORA_ROOT/jobs/target/spark-lora-jobs.jar})
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
# Without SPARK_LORA_JAR: SPARK_LORA_DEFAULT_JAR (set by submit-gpu.sh to the -Pcuda build's
# jobs/target/cuda/spark-lora-jobs-cuda.jar), else the CPU build's jobs/target/spark-lora-jobs.jar.
resolve_jar() {
  JAR="${SPARK_LORA_JAR:-${SPARK_LORA_DEFAULT_JAR:-$SPARK_LORA_ROOT/jobs/target/spark-lora-jobs.jar}}"
  case "$JAR" in
    *://*) ;;
    *)
      if [ ! -f "$JAR" ]; then
        echo "$(basename "$0"): $JAR not found; build it with: (cd $SPARK_LORA_ROOT && mvn -B -DskipTests package${1:+ $1})" >&2
        exit 1
      fi ;;
  esac
}

# Sets SUBMIT to the spark-submit command: SPARK_SUBMIT, else $SPARK_HOME/bin/spark-submit, else spark-submit on
# PATH, else Spark's own SparkSubmit class run with java on this checkout's Spark class path (a machine with a
# build of spark-lora but no Spark installation; the driver then runs in that JVM, with the flags of
# conf/jvm.options, the log4j file and SPARK_LORA_DRIVER_MEMORY [4g] as heap).
resolve_submit() {
  if [ -n "${SPARK_SUBMIT:-}" ]; then SUBMIT=("$SPARK_SUBMIT"); return; fi
  if [ -n "${SPARK_HOME:-}" ] && [ -x "$SPARK_HOME/bin/spark-submit" ]; then SUBMIT=("$SPARK_HOME/bin/spark-submit"); return; fi
  if command -v spark-submit >/dev/null 2>&1; then SUBMIT=(spark-submit); return; fi
  local cp="${SPARK_LORA_SPARK_CLASSPATH:-}"
  if [ -z "$cp" ] && [ -f "$SPARK_LORA_ROOT/jobs/target/spark-classpath.txt" ]; then cp="$(cat "$SPARK_LORA_ROOT/jobs/target/spark-classpath.txt")"; fi
  if [ -z "$cp" ]; then
    echo "$(basename "$0"): no spark-submit: set SPARK_HOME (a Spark 3.5 installation) or SPARK_SUBMIT, or build this checkout (mvn -B -DskipTests package) to run Spark's SparkSubmit from it" >&2
    exit 1
  fi
  local flags=()
  read -r -a flags <<< "$("$SPARK_LORA_ROOT/bin/jvm-flags.sh")"
  SUBMIT=("${JAVA_HOME:+$JAVA_HOME/bin/}java" "-Xmx${SPARK_LORA_DRIVER_MEMORY:-4g}" "${flags[@]}" "-Dlog4j2.configurationFile=$(log4j_file)"
          -cp "$cp" org.apache.spark.deploy.SparkSubmit)
}

# Fails (exit 1) with ClusterOffer's message when no alive worker of the standalone master $1 (web UI $2) can
# host one executor of the size the properties file and the options ($3...) ask for: Spark would wait for
# resources forever. Skipped when SPARK_LORA_CHECK_FIT=0, the jar is not a local file, or the master's web UI
# cannot be read (a warning; the driver checks again).
check_standalone_fit() {
  local master="$1" ui="$2"; shift 2
  if [ "${SPARK_LORA_CHECK_FIT:-1}" = "0" ]; then return; fi
  case "$JAR" in *://*) return ;; esac
  local props="${SPARK_LORA_PROPERTIES:-$SPARK_LORA_DEFAULT_PROPERTIES}" extra=() rc=0
  if [ -n "${SPARK_LORA_SUBMIT_ARGS:-}" ]; then read -r -a extra <<< "$SPARK_LORA_SUBMIT_ARGS"; fi
  "${JAVA_HOME:+$JAVA_HOME/bin/}java" -cp "$JAR" io.sparklora.jobs.ClusterOffer "$ui" "$master" --properties-file "$props" "$@" ${extra[@]+"${extra[@]}"} || rc=$?
  case "$rc" in
    0) ;;
    3) exit 1 ;;
    *) echo "$(basename "$0"): warning: could not check that executors fit on $master (web UI $ui, SPARK_MASTER_WEBUI); submitting anyway" >&2 ;;
  esac
}

log4j_file() {
  local f="${SPARK_LORA_LOG4J:-$SPARK_LORA_ROOT/conf/log4j2.properties}"
  case "$f" in /*) ;; *) f="$PWD/$f" ;; esac
  printf '%s' "$f"
}

# The value of KEY in the properties file (one line "key value" or "key=value", as conf/spark-*.conf write it).
prop_value() {
  sed -n -E "s/^[[:space:]]*$(printf '%s' "$1" | sed 's/\./\\./g')[[:space:]]*[=:[:space:]][[:space:]]*(.*)$/\1/p" "$2" | tail -n 1 | sed -E 's/[[:space:]]+$//'
}

# Runs spark-submit: --class for the stage, the properties file, the given options, the log4j file,
# SPARK_LORA_SUBMIT_ARGS, the jar and the job's arguments. Prints the command first.
# Logging: the log4j file travels with --files (merged with any --files among the options) and
# -Dlog4j2.configurationFile is appended to the properties file's spark.driver/executor.extraJavaOptions
# (which stay equal to conf/jvm.options in the file). The driver reads it from this machine's path; executors
# from their working directory, where YARN and Kubernetes put --files before they start; on a standalone
# master (spark://) executors start before files arrive, so they read the same absolute path as the driver
# (the checkout's path on every worker; where it is missing they log at Spark's default level).
run_submit() {
  resolve_submit
  local props="${SPARK_LORA_PROPERTIES:-$SPARK_LORA_DEFAULT_PROPERTIES}"
  if [ ! -f "$props" ]; then echo "$(basename "$0"): properties file $props not found" >&2; exit 1; fi
  local log4j
  log4j="$(log4j_file)"
  if [ ! -f "$log4j" ]; then echo "$(basename "$0"): log4j configuration $log4j not found (SPARK_LORA_LOG4J)" >&2; exit 1; fi
  local opts=() files="$log4j" master="" prev=""
  for a in "$@"; do
    if [ "$prev" = "--files" ]; then files="$files,$a"
    elif [ "$a" != "--files" ]; then opts+=("$a"); fi
    if [ "$prev" = "--master" ]; then master="$a"; fi
    prev="$a"
  done
  local executor_log4j="log4j2.properties"
  case "$master" in spark://*) executor_log4j="file:$log4j" ;; esac
  opts+=(--files "$files"
         --conf "spark.driver.extraJavaOptions=$(prop_value spark.driver.extraJavaOptions "$props") -Dlog4j2.configurationFile=file:$log4j"
         --conf "spark.executor.extraJavaOptions=$(prop_value spark.executor.extraJavaOptions "$props") -Dlog4j2.configurationFile=$executor_log4j")
  local extra=()
  if [ -n "${SPARK_LORA_SUBMIT_ARGS:-}" ]; then read -r -a extra <<< "$SPARK_LORA_SUBMIT_ARGS"; fi
  local cmd=("${SUBMIT[@]}" --class "$MAIN_CLASS" --name "spark-lora $STAGE" --properties-file "$props" "${opts[@]}" ${extra[@]+"${extra[@]}"} "$JAR" ${JOB_ARGS[@]+"${JOB_ARGS[@]}"})
  echo "+ ${cmd[*]}" >&2
  exec "${cmd[@]}"
}
