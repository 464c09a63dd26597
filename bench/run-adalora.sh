#!/usr/bin/env bash
# AdaLoRA against LoRA at the same final rank budget, on the demo task (docs/VARIANTS.md, between
# <!-- adalora:begin --> and <!-- adalora:end -->): LoRA with a uniform rank R on every targeted matrix, and AdaLoRA
# starting at INIT_R per matrix and ending at an average of R (target_r = R), so both end with R x matrices ranks.
# Same steps, batch, lr and seed per pair; one JVM per row.
#
# Usage: bench/run-adalora.sh
# Environment (all optional):
#   SEEDS="42 43 44" STEPS=100 BATCH=16 LR=3e-3 R=8 ALPHA=16 TARGETS=c_attn,c_proj,c_fc
#   LR_ADALORA=1e-2                    AdaLoRA also runs at this lr (its row at LR is kept): PEFT initialises P and Q at
#                                      N(0, 0.02) and Λ at 0, so its updates start far smaller than LoRA's (kaiming A);
#                                      LoRA at 1e-2 collapses to one answer on this task
#   INIT_R=12 TINIT=10 TFINAL=30 DELTA_T=5     AdaLoRA's schedule (PEFT's names)
#   RUN_DIR=runs/demo SKIP_BUILD=0 QUIET_WAIT=30 JAVA_OPTS=-Xmx2g
#   APPEND=0                           1: keep the rows of the last run and add these (the report covers all)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
SEEDS=${SEEDS:-"42 43 44"}; STEPS=${STEPS:-100}; BATCH=${BATCH:-16}; LR=${LR:-3e-3}; R=${R:-8}; ALPHA=${ALPHA:-16}
TARGETS=${TARGETS:-c_attn,c_proj,c_fc}; INIT_R=${INIT_R:-12}; TINIT=${TINIT:-10}; TFINAL=${TFINAL:-30}; DELTA_T=${DELTA_T:-5}
LR_ADALORA=${LR_ADALORA:-1e-2}; RUN_DIR=${RUN_DIR:-runs/demo}; SKIP_BUILD=${SKIP_BUILD:-0}; QUIET_WAIT=${QUIET_WAIT:-30}; JAVA_OPTS=${JAVA_OPTS:--Xmx2g}
out="$root/bench/out"
mkdir -p "$out"
if [ "$SKIP_BUILD" != 1 ]; then
  mvn -B -o -q -DskipTests -pl bench -am package >&2
fi
jar="$(ls "$root"/bench/target/spark-lora-bench-*.jar | head -n 1)"
cp="$jar:$(cat "$root/bench/target/classpath.txt")"
flags="$("$root/bin/jvm-flags.sh")"
# shellcheck source=bench/quiet.sh
source "$root/bench/quiet.sh"
quiet() { grep -v -E 'SLF4J|^\[main\] INFO|^\s*$' || true; }
bench() {
  # shellcheck disable=SC2086
  java $JAVA_OPTS $flags -cp "$cp" io.sparklora.bench.VariantsBenchmark "$@" 2>&1 | quiet >&2
}
if [ ! -f "$RUN_DIR/stages/pretrain/_SUCCESS" ] || [ ! -f "$RUN_DIR/shards/adapt/_SUCCESS" ]; then
  echo "no demo base in $RUN_DIR: run bench/run-variants.sh once (it makes one)" >&2
  exit 1
fi
runs="$out/adalora-runs.jsonl"
[ "${APPEND:-0}" = 1 ] || : > "$runs"     # APPEND=1 adds rows (e.g. more SEEDS) to the last run's
common=(--run "$RUN_DIR" --steps "$STEPS" --batch "$BATCH" --lr "$LR" --lr-warmup 10 --alpha "$ALPHA" --targets "$TARGETS"
        --option trainable_token_indices=labels --work "$out/adalora" --out "$runs")
for seed in $SEEDS; do
  wait_quiet "$QUIET_WAIT"
  echo "-- lora r=$R, seed $seed" >&2
  bench row --method lora --label "lora r=$R" --r "$R" --seed "$seed" "${common[@]}"
  wait_quiet "$QUIET_WAIT"
  echo "-- adalora $INIT_R -> $R, seed $seed" >&2
  bench row --method adalora --label "adalora $INIT_R→$R" --r "$INIT_R" --seed "$seed" --option "target_r=$R" --option "tinit=$TINIT" \
      --option "tfinal=$TFINAL" --option "deltaT=$DELTA_T" "${common[@]}"
  if [ "$LR_ADALORA" != "$LR" ]; then
    wait_quiet "$QUIET_WAIT"
    echo "-- adalora $INIT_R -> $R at lr $LR_ADALORA, seed $seed" >&2
    bench row --method adalora --label "adalora $INIT_R→$R, lr $LR_ADALORA" --r "$INIT_R" --seed "$seed" --option "target_r=$R" \
        --option "tinit=$TINIT" --option "tfinal=$TFINAL" --option "deltaT=$DELTA_T" "${common[@]}" --lr "$LR_ADALORA"
  fi
done
command="bench/run-adalora.sh"
[ "$SEEDS" = "42 43 44" ] || [ "${APPEND:-0}" = 1 ] || command="SEEDS='$SEEDS' $command"
bench adalora-report --runs "$runs" --doc docs/VARIANTS.md --command "$command"
