#!/usr/bin/env bash
# DyLoRA and DP-DyLoRA on the demo task, every row in its own JVM, one after another (figures side by side):
#   dylora        DyLoRA r = 8 trained once, then scored at ranks 1, 2, 4, 8 (its truncations)
#   lora-r1..r8   plain LoRA trained separately at each of those ranks (same steps, batch, lr, seed, alpha, targets)
#   dp-s<σ>       DP-DyLoRA: DyLoRA r = 8 trained with example-level DP-SGD (Poisson rate batch/blocks, clip C,
#                 noise σ·C from the driver), through the distributed trainer's rounds in one process; ε at δ = 1e-5
# No row trains label rows (trainable tokens are not clipped per example, so DP refuses them).
# Writes the region between <!-- dylora-dp:begin --> and <!-- dylora-dp:end --> of docs/VARIANTS.md and
# bench/out/dylora-dp-runs.jsonl. Needs runs/demo (base/ and shards/adapt/) as bench/run-variants.sh does.
#
# Environment: STEPS=100 BATCH=16 LR=3e-3 SEED=42 R=8 ALPHA=16 SIGMAS="0.6 1 2" CLIP=1 RUN_DIR=runs/demo
#              SKIP_BUILD=0 JAVA_OPTS=-Xmx2g QUIET_WAIT=30
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
start=$(date +%s)
STEPS=${STEPS:-100}; BATCH=${BATCH:-16}; LR=${LR:-3e-3}; SEED=${SEED:-42}; R=${R:-8}; ALPHA=${ALPHA:-16}
SIGMAS=${SIGMAS:-0.6 1 2}; CLIP=${CLIP:-1}; RUN_DIR=${RUN_DIR:-runs/demo}; SKIP_BUILD=${SKIP_BUILD:-0}
JAVA_OPTS=${JAVA_OPTS:--Xmx2g}; QUIET_WAIT=${QUIET_WAIT:-30}
out_dir="$root/bench/out"; runs="$out_dir/dylora-dp-runs.jsonl"
mkdir -p "$out_dir"
if [ "$SKIP_BUILD" != 1 ]; then mvn -B -o -q -DskipTests -pl bench -am package >&2; fi
if [ ! -f "$RUN_DIR/stages/pretrain/_SUCCESS" ] || [ ! -f "$RUN_DIR/shards/adapt/_SUCCESS" ]; then
  echo "no finished base and shards in $RUN_DIR: run bench/run-variants.sh (or spark-lora train --config conf/demo.yaml --output $RUN_DIR) first" >&2
  exit 1
fi
jar="$(ls "$root"/bench/target/spark-lora-bench-*.jar | head -n 1)"
flags="$("$root/bin/jvm-flags.sh")"
# shellcheck source=bench/quiet.sh
source "$root/bench/quiet.sh"
bench() {
  # shellcheck disable=SC2086
  java $JAVA_OPTS $flags -cp "$jar:$(cat "$root/bench/target/classpath.txt")" io.sparklora.bench.VariantsBenchmark "$@"
}
common=(--run "$RUN_DIR" --steps "$STEPS" --batch "$BATCH" --seed "$SEED" --lr "$LR" --alpha "$ALPHA" --work "$out_dir/dylora-dp" --out "$runs")
: > "$runs"
wait_quiet "$QUIET_WAIT"; echo "== dylora r=$R" >&2
bench row --method dylora --label dylora --r "$R" --eval-ranks 1,2,4,8 "${common[@]}" 2>&1 | grep -v SLF4J >&2
for r in 1 2 4 8; do
  wait_quiet "$QUIET_WAIT"; echo "== lora r=$r" >&2
  bench row --method lora --label "lora-r$r" --r "$r" "${common[@]}" 2>&1 | grep -v SLF4J >&2
done
for s in $SIGMAS; do
  wait_quiet "$QUIET_WAIT"; echo "== DP-DyLoRA sigma=$s" >&2
  bench row --method dylora --label "dp-s$s" --r "$R" --dp-mode example --dp-sigma "$s" --dp-clip "$CLIP" "${common[@]}" 2>&1 | grep -v SLF4J >&2
done
end=$(date +%s)
bench rank-dp-report --runs "$runs" --doc docs/VARIANTS.md --total-seconds "$((end - start))" \
    --command "bench/run-dylora-dp.sh (STEPS=$STEPS BATCH=$BATCH LR=$LR R=$R SIGMAS='$SIGMAS' CLIP=$CLIP)" 2>&1 | grep -v SLF4J
