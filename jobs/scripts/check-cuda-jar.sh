#!/usr/bin/env bash
# Checks the CUDA build of the jobs jar against the CPU build (CI's last step, .ci/run; no GPU needed):
#   1. the two jars hold the same spark-lora classes, byte for byte, and differ only in ND4J's backend
#      (CudaJarCheck.java: CUDA backend and natives in the CUDA jar, no CPU backend, natives or OpenBLAS);
#   2. on a machine without a GPU, the CUDA jar's CLI stops with one line and exit status 3 (io.sparklora.model.CudaCheck)
#      instead of ND4J's native stack trace, a task's first engine call throws CudaUnavailableException with that line,
#      and --help still works.
# Needs both jars built first:
#   mvn -B -DskipTests package                                      # jobs/target/spark-lora-jobs.jar
#   mvn -B -Pcuda -Dmaven.test.skip=true -pl jobs -am package       # jobs/target/cuda/spark-lora-jobs-cuda.jar
# CPU_JAR and CUDA_JAR name other jars.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cpu_jar="${CPU_JAR:-$root/jobs/target/spark-lora-jobs.jar}"
cuda_jar="${CUDA_JAR:-$root/jobs/target/cuda/spark-lora-jobs-cuda.jar}"
cuda_cp_file="$(dirname "$cuda_jar")/local-classpath.txt"
for f in "$cpu_jar" "$cuda_jar" "$cuda_cp_file"; do
  [ -f "$f" ] || { echo "check-cuda-jar: $f not found (build both jars first: see the top of $0)" >&2; exit 1; }
done
echo "check-cuda-jar: CPU jar $(du -h "$cpu_jar" | cut -f1), CUDA jar $(du -h "$cuda_jar" | cut -f1)"

# 1. same engine code, different backend
java "$root/jobs/scripts/CudaJarCheck.java" "$cpu_jar" "$cuda_jar"

# 2. no GPU: one line, exit 3. (With a working NVIDIA driver here the check passes and the CLI goes on, so skip.)
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "check-cuda-jar: this machine has a GPU (nvidia-smi -L); skipping the no-GPU start-up check"
  exit 0
fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046
run_cli() { java $("$root/bin/jvm-flags.sh" --no-vector) -cp "$cuda_jar:$(cat "$cuda_cp_file")" io.sparklora.jobs.SparkLoraCli "$@" >"$tmp/out" 2>"$tmp/err"; }

set +e
run_cli train --local --model "$tmp/no-model" --data "$tmp/no-data.jsonl" --adapter lora:r=8 --out "$tmp/out-dir"
status=$?
set -e
expected_start="spark-lora: this is the CUDA build (nd4j-cuda-11.6) but no usable CUDA driver/GPU was found: "
fail() {
  echo "check-cuda-jar: $1" >&2
  echo "--- stdout"; cat "$tmp/out"; echo "--- stderr"; cat "$tmp/err"
  exit 1
}
[ "$status" -eq 3 ] || fail "the CUDA jar's CLI exited with $status on a machine without a GPU, expected 3"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "expected exactly one line on stderr, got $(wc -l <"$tmp/err")"
[ ! -s "$tmp/out" ] || fail "expected nothing on stdout"
case "$(cat "$tmp/err")" in
  "$expected_start"*"; use the CPU jar"*"or run on a GPU node"*) ;;
  *) fail "stderr is not the CUDA build's one-line message" ;;
esac
echo "check-cuda-jar: no GPU here; the CUDA jar stops with exit status 3 and one line:"
cat "$tmp/err"

# what a Spark task does first (TaskEngine.bind -> EngineThreads.set): it throws CudaUnavailableException with that line
cat >"$tmp/TaskStart.java" <<'JAVA'
public class TaskStart {
    public static void main(String[] args) {
        try {
            io.sparklora.model.EngineThreads.set(1);
            System.out.println("EngineThreads.set(1) returned");
        } catch (io.sparklora.model.CudaCheck.CudaUnavailableException e) {
            System.out.println(e.getMessage());
        }
    }
}
JAVA
# shellcheck disable=SC2046
java $("$root/bin/jvm-flags.sh" --no-vector) -cp "$cuda_jar:$(cat "$cuda_cp_file")" "$tmp/TaskStart.java" >"$tmp/out" 2>"$tmp/err" \
  || fail "the task-start probe failed"
case "$(cat "$tmp/out")" in
  "$expected_start"*) echo "check-cuda-jar: a task's first engine call throws CudaUnavailableException with the same line" ;;
  *) fail "a task's first engine call did not throw CudaUnavailableException with the CUDA build's line" ;;
esac

# --help needs no engine and still works
set +e
run_cli --help
status=$?
set -e
[ "$status" -eq 0 ] && grep -q '^usage: spark-lora' "$tmp/out" || fail "the CUDA jar's --help failed (status $status)"
echo "check-cuda-jar: OK"
