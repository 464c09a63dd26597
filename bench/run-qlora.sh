#!/usr/bin/env bash
# QLoRA's figures (docs/QLORA.md, between <!-- qlora:begin --> and <!-- qlora:end -->):
#   1. bits per base parameter on the bytes held, and NF4's quantization error against a uniform 4-bit grid;
#   2. the tiled dequantizing matmul's cost against dense fp32, by tile size;
#   3. a LoRA training step at the GPT-2-small shape over an fp32 and an NF4 base (peak RSS, bytes held), and over
#      NF4 at a second sequence length, whose difference gives the activation bytes per token;
#   4. which Llama-family models fit LoRA training in an 8 GiB executor with and without NF4 (computed from 3);
#   5. LoRA against QLoRA (the same LoRA over the NF4 base, with and without double quantization) on the demo task.
# Every measurement runs in its own JVM, so each peak RSS belongs to one configuration.
#
# Usage: bench/run-qlora.sh
# Environment (all optional):
#   STEPS=100 BATCH=16 LR=3e-3           the demo-task rows' budget (as bench/run-variants.sh)
#   SEEDS="42 43 44"                     the demo-task rows run once per seed (adapter init and data order)
#   PARTS="1 2 3 4 5"                    which of the parts below to run (the report uses the others' last outputs)
#   STEP_STEPS=3 STEP_WARMUP=2          timed and warm-up steps of the GPT-2-small step runs (batch 4 x 256, then x 128)
#   RUN_DIR=runs/demo CONFIG=conf/demo.yaml   the demo run holding base/ and shards/adapt/ (made when missing)
#   SKIP_BUILD=0 QUIET_WAIT=30 JAVA_OPTS=-Xmx4g
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
STEPS=${STEPS:-100}; BATCH=${BATCH:-16}; LR=${LR:-3e-3}; SEEDS=${SEEDS:-"42 43 44"}; PARTS=${PARTS:-"1 2 3 4 5"}
part() { [[ " $PARTS " == *" $1 "* ]]; }
STEP_STEPS=${STEP_STEPS:-3}; STEP_WARMUP=${STEP_WARMUP:-2}
RUN_DIR=${RUN_DIR:-runs/demo}; CONFIG=${CONFIG:-conf/demo.yaml}
SKIP_BUILD=${SKIP_BUILD:-0}; QUIET_WAIT=${QUIET_WAIT:-30}; JAVA_OPTS=${JAVA_OPTS:--Xmx4g}
out="$root/bench/out"
mkdir -p "$out"

if [ "$SKIP_BUILD" != 1 ]; then
  echo "building (mvn -o -DskipTests -pl bench -am package)..." >&2
  mvn -B -o -q -DskipTests -pl bench -am package >&2
fi
jar="$(ls "$root"/bench/target/spark-lora-bench-*.jar | head -n 1)"
cp="$jar:$(cat "$root/bench/target/classpath.txt")"
flags="$("$root/bin/jvm-flags.sh")"
# shellcheck source=bench/quiet.sh
source "$root/bench/quiet.sh"
quiet() { grep -v -E 'SLF4J|^\[main\] INFO|^\s*$' || true; }
run() {   # main-class args...
  # shellcheck disable=SC2086
  java $JAVA_OPTS $flags -cp "$cp" "$@" 2>&1 | quiet >&2
}

if part 1; then
echo "== 1. codec" >&2
run io.sparklora.bench.QloraBench codec --out "$out/qlora-codec.json"
fi
if part 2; then
echo "== 2. tiled matmul" >&2
wait_quiet "$QUIET_WAIT"
run io.sparklora.bench.QloraBench tiles --out "$out/qlora-tiles.json"
fi

if part 3; then
echo "== 3. training steps at the GPT-2-small shape" >&2
: > "$out/qlora-step-runs.jsonl"
for spec in "none 256" "nf4+dq 256" "nf4+dq 128"; do
  read -r q seq <<< "$spec"
  wait_quiet "$QUIET_WAIT"
  echo "-- base $q, seq $seq" >&2
  run io.sparklora.bench.TrainStepBenchmark --mode lora --quantization "$q" --batch 4 --seq "$seq" --steps "$STEP_STEPS" \
      --warmup "$STEP_WARMUP" --peak-gflops 1 --label "qlora-$q-$seq" --out "$out/qlora-step-runs.jsonl"
done
# activation bytes per token, layer and hidden unit: the slope of the timed-step peak between the two NF4 lengths
coef=$(python3 - "$out/qlora-step-runs.jsonl" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
nf4 = sorted((r for r in runs if r["base_quantization"] != "none"), key=lambda r: r["seq"])
peak = lambda r: r.get("peak_rss_timed_steps_gib", r["peak_rss_gib"]) * 2**30
a, b = nf4[0], nf4[-1]
tokens = (b["tokens_per_step"] - a["tokens_per_step"])
print((peak(b) - peak(a)) / tokens / 12 / 768)
PY
)
echo "activation bytes per token, layer and hidden unit: $coef" >&2
echo "$coef" > "$out/qlora-activation-coef.txt"
fi

if part 4; then
echo "== 4. Llama fit in 8 GiB" >&2
run io.sparklora.bench.QloraBench fit --activation-bytes-per-token-hidden "$(cat "$out/qlora-activation-coef.txt")" --budget-gib 8 \
    --out "$out/qlora-fit.json"
fi

if part 5; then
echo "== 5. LoRA vs QLoRA on the demo task" >&2
if [ ! -f "$RUN_DIR/stages/pretrain/_SUCCESS" ] || [ ! -f "$RUN_DIR/shards/adapt/_SUCCESS" ]; then
  echo "no demo base in $RUN_DIR: run bench/run-variants.sh once (it makes one), or spark-lora train --config $CONFIG --output $RUN_DIR" >&2
  exit 1
fi
: > "$out/qlora-variants-runs.jsonl"
for seed in $SEEDS; do
  for spec in "lora none" "qlora nf4" "qlora-no-dq nf4-nodq"; do
    read -r label q <<< "$spec"
    dq=true; [ "$q" = nf4-nodq ] && { q=nf4; dq=false; }
    wait_quiet "$QUIET_WAIT"
    echo "-- $label, seed $seed" >&2
    run io.sparklora.bench.VariantsBenchmark row --method lora --label "$label" --quantization "$q" --double-quant "$dq" --run "$RUN_DIR" \
        --steps "$STEPS" --batch "$BATCH" --seed "$seed" --lr "$LR" --lr-warmup 10 --r 8 --alpha 16 --targets c_attn,c_proj,c_fc \
        --option trainable_token_indices=labels --work "$out/qlora" --out "$out/qlora-variants-runs.jsonl"
  done
done
fi

echo "== report" >&2
# shellcheck disable=SC2086
java $JAVA_OPTS $flags -cp "$cp" io.sparklora.bench.QloraBench report --dir "$out" --doc docs/QLORA.md --command "bench/run-qlora.sh" 2>&1 | quiet
