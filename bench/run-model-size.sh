#!/usr/bin/env bash
# Model-size benchmark: one LoRA training step at the shape of a published model (random weights, built from
# its config.json alone), default Llama-3.2-1B (bench/configs/llama-3.2-1b.json: 1,235,814,400 parameters,
# tied embeddings) with LoRA r = 8 on PEFT's default targets (q_proj, v_proj), batch 1 x 512.
# Reports the step time, tokens/s, MFU against the measured sgemm peak, and the process's peak RSS.
# See docs/BENCHMARKS.md ("Model size").
#
# Usage: bench/run-model-size.sh
# Environment (all optional):
#   CONFIG=bench/configs/llama-3.2-1b.json   the config.json to build
#   STEPS=2 WARMUP=1 BATCH=1 SEQ=512 RANK=8  timed steps, untimed warm-up steps, shape, LoRA rank
#   SKIP_BUILD=0                             1: reuse bench/target from an earlier build
#   JAVA_OPTS="-Xmx2g -Dorg.bytedeco.javacpp.maxbytes=18g ..."  JVM options: the weights live off-heap, which
#                                            JavaCPP caps at the heap size unless maxbytes says otherwise
#   QUIET_WAIT=600                           wait up to this many seconds for idle CPUs first; 0: don't
# Output: the benchmark's lines on stdout and its JSON line in bench/out/model-size-runs.jsonl.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CONFIG=${CONFIG:-bench/configs/llama-3.2-1b.json}
STEPS=${STEPS:-2}
WARMUP=${WARMUP:-1}
BATCH=${BATCH:-1}
SEQ=${SEQ:-512}
RANK=${RANK:-8}
SKIP_BUILD=${SKIP_BUILD:-0}
JAVA_OPTS=${JAVA_OPTS:--Xmx2g -Dorg.bytedeco.javacpp.maxbytes=18g -Dorg.bytedeco.javacpp.maxphysicalbytes=21g}
QUIET_WAIT=${QUIET_WAIT:-600}

out_dir="$root/bench/out"
mkdir -p "$out_dir"
if [ "$SKIP_BUILD" != 1 ]; then
  echo "building spark-lora-pipeline and spark-lora-bench (mvn -DskipTests install)..." >&2
  mvn -B -q -DskipTests -pl bench -am install >&2
fi
jar="$(ls "$root"/bench/target/spark-lora-bench-*.jar 2>/dev/null | head -n 1)"
cp_file="$root/bench/target/classpath.txt"
if [ -z "$jar" ] || [ ! -f "$cp_file" ]; then
  echo "bench/target has no jar or classpath.txt; run without SKIP_BUILD=1" >&2
  exit 1
fi
# shellcheck source=quiet.sh
source bench/quiet.sh
wait_quiet "$QUIET_WAIT"
flags="$(bin/jvm-flags.sh)"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores" >&2
# shellcheck disable=SC2086
java $JAVA_OPTS $flags -cp "$jar:$(cat "$cp_file")" io.sparklora.bench.TrainStepBenchmark \
  --mode lora --config "$CONFIG" --rank "$RANK" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --warmup "$WARMUP" \
  --label "model-size" --out "$out_dir/model-size-runs.jsonl"
