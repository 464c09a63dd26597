#!/usr/bin/env bash
# Paged-optimizer memory benchmark: AdamW state in memory (MEMORY) against memory-mapped files (MAPPED), for a
# LoRA-sized and a full-fine-tuning-sized parameter set, each mode in its own JVM so peaks do not mix.
# See docs/paged-optimizer.md.
#
# Usage: bench/run-paged-optimizer.sh
# Environment (all optional):
#   SETS="lora-gpt2-r16 full-200m"   parameter sets (PagedOptimizerBench)
#   STEPS=3                          optimizer steps before the page-out
#   SPILL_DIR=/tmp/paged-optimizer   where MAPPED state files go (local disk)
#   SKIP_BUILD=0                     1: reuse bench/target from an earlier build
#   JAVA_OPTS="-Xmx1g -Dorg.bytedeco.javacpp.maxbytes=8g -Dorg.bytedeco.javacpp.maxphysicalbytes=16g"
# Output: the benchmark's tables on stdout, JSON lines in bench/out/paged-optimizer-runs.jsonl.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
SETS=${SETS:-"lora-gpt2-r16 full-200m"}
STEPS=${STEPS:-3}
SPILL_DIR=${SPILL_DIR:-/tmp/paged-optimizer}
SKIP_BUILD=${SKIP_BUILD:-0}
JAVA_OPTS=${JAVA_OPTS:--Xmx1g -Dorg.bytedeco.javacpp.maxbytes=8g -Dorg.bytedeco.javacpp.maxphysicalbytes=16g}

out_dir="$root/bench/out"
mkdir -p "$out_dir" "$SPILL_DIR"
if [ "$SKIP_BUILD" != 1 ]; then
  echo "building spark-lora-pipeline and spark-lora-bench (mvn -o -DskipTests package)..." >&2
  mvn -B -o -q -DskipTests -pl bench -am package >&2
fi
jar="$(ls "$root"/bench/target/spark-lora-bench-*.jar 2>/dev/null | head -n 1)"
cp_file="$root/bench/target/classpath.txt"
pipeline_jar="$(ls "$root"/pipeline/target/spark-lora-pipeline-*.jar 2>/dev/null | grep -v -- '-tests\|-sources' | head -n 1)"
flags="$(bin/jvm-flags.sh)"
echo "CPU: $(lscpu | grep 'Model name' | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores" >&2
for set in $SETS; do
  for mode in MEMORY MAPPED; do
    echo "== $set $mode" >&2
    # shellcheck disable=SC2086
    java $JAVA_OPTS $flags -cp "$jar:$pipeline_jar:$(cat "$cp_file")" io.sparklora.bench.PagedOptimizerBench \
      --mode "$mode" --set "$set" --steps "$STEPS" --dir "$SPILL_DIR" --out "$out_dir/paged-optimizer-runs.jsonl"
  done
done
