#!/usr/bin/env bash
# LoRA-family comparison: every registered adapter method (AdapterMethods.names(), test_* skipped) and full
# fine-tuning, trained on the same labelled task (the demo's SpamAssassin slice, on the base the demo
# pretrains on the KJV slice) with the same steps, batch and seed, then scored on the same held-out mail:
# trainable parameters, adapter file bytes, median step time, peak RSS, validation loss, label accuracy.
# Also measures the activation bytes one adapted 768 -> 768 layer keeps for backward, LoRA vs LoRA-FA.
# Every row runs in its own JVM, so each peak RSS belongs to one method. See docs/VARIANTS.md.
#
# Usage: bench/run-variants.sh
# Environment (all optional):
#   STEPS=100 BATCH=16 SEED=42         the budget, the same for every row (BATCH blocks of the run's seq_len; the
#                                      demo's 100 rounds of 2 tasks x 8)
#   LR=3e-3                            peak lr of the adapter methods (the demo's train.lr); LoRA+ trains B at
#                                      LR x loraplus_lr_ratio (its default 16), as its method's groups say
#   LR_<row>=...                       one row's lr, e.g. LR_dora=5e-3; defaults: LR_vera=1e-1 (VeRA's
#                                      vectors train at ~10x LoRA's lr in its paper), LR_full=1e-3 (the
#                                      demo's full_finetune.lr), LR_adalora=1e-2 (PEFT starts P and Q at N(0, 0.02) and
#                                      Λ at 0: at LoRA's 3e-3 it trains too slowly, bench/run-adalora.sh); every other
#                                      row uses LR
#   R=8 ALPHA=16 TARGETS=c_attn,c_proj,c_fc   adapter settings shared by every method (the demo's adapter)
#   R_<row>=...                        one row's rank; default R_adalora=12 (AdaLoRA's init_r, falling to target_r = 8:
#                                      the same final rank budget as the other rows)
#   OPTIONS="key=value ..."            method settings, each passed to the methods that have it
#                                      (e.g. "loraplus_lr_ratio=8 d_initial=0.1"); default
#                                      "trainable_token_indices=labels delta_warmup=10 target_r=8 tinit=10 tfinal=30 deltaT=5":
#                                      the demo's label rows for every method, a Delta-LoRA warm-up that ends within the
#                                      100 steps, and AdaLoRA's schedule over them
#   LR_WARMUP=10 UNTIMED=5             lr warm-up steps (then cosine decay); first steps left out of the
#                                      step-time median (they still train)
#   METHODS="lora vera full"           only these rows (default: every registered method, then full)
#   BASE_ROW=1                         also score the untrained base (the reference for the other rows)
#   RUN_DIR=runs/demo                  pipeline run holding base/ and shards/adapt/; when either is missing the
#                                      script makes them with `spark-lora train --config CONFIG --output RUN_DIR`
#   CONFIG=conf/demo.yaml              (tokenizer, tokenize, pretrain and the demo's LoRA train stage; finished
#                                      stages are skipped)
#   QUIET_WAIT=30                      before each row, wait up to this many seconds for the CPUs to be
#                                      idle (other work on the machine skews timings); 0: don't wait
#   SKIP_BUILD=0                       1: reuse bench/target from an earlier build
#   JAVA_OPTS=-Xmx2g                   JVM options of every row
#   WRITE_DOC=1                        0: leave docs/VARIANTS.md alone
#   SUMMARY_ONLY=0                     1: only rewrite the doc region and variants.json from the last rows
# Outputs: the table between <!-- comparison:begin --> and <!-- comparison:end --> in docs/VARIANTS.md (the
# rest of the page is left as it is); bench/out/variants.json (machine, every row's raw figures: per-step
# times and losses, optimizer groups, predictions; the activation measurement); bench/out/variants-runs.jsonl
# (one JSON line per row); bench/out/variants-activations.json; bench/out/variants-seconds.txt (how long the rows
# took); the adapters and the fine-tuned model under bench/out/variants/<row>/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
start=$(date +%s)

STEPS=${STEPS:-100}
BATCH=${BATCH:-16}
SEED=${SEED:-42}
LR=${LR:-3e-3}
LR_vera=${LR_vera:-1e-1}
LR_adalora=${LR_adalora:-1e-2}
LR_full=${LR_full:-1e-3}
R=${R:-8}
ALPHA=${ALPHA:-16}
TARGETS=${TARGETS:-c_attn,c_proj,c_fc}
OPTIONS=${OPTIONS-trainable_token_indices=labels delta_warmup=10 target_r=8 tinit=10 tfinal=30 deltaT=5}
R_adalora=${R_adalora:-12}      # AdaLoRA starts at 12 per matrix and ends at R = 8 on average: LoRA's final rank budget
LR_WARMUP=${LR_WARMUP:-10}
UNTIMED=${UNTIMED:-5}
METHODS=${METHODS:-}
BASE_ROW=${BASE_ROW:-1}
RUN_DIR=${RUN_DIR:-runs/demo}
CONFIG=${CONFIG:-conf/demo.yaml}
QUIET_WAIT=${QUIET_WAIT:-30}
SKIP_BUILD=${SKIP_BUILD:-0}
JAVA_OPTS=${JAVA_OPTS:--Xmx2g}
WRITE_DOC=${WRITE_DOC:-1}
SUMMARY_ONLY=${SUMMARY_ONLY:-0}

out_dir="$root/bench/out"
runs="$out_dir/variants-runs.jsonl"
acts="$out_dir/variants-activations.json"
mkdir -p "$out_dir"

# The command that reproduces this run: the script with every knob that differs from its default.
command="bench/run-variants.sh"
for kv in "STEPS=$STEPS:150" "BATCH=$BATCH:8" "SEED=$SEED:42" "LR=$LR:1e-2" "LR_vera=$LR_vera:1e-1" "LR_full=$LR_full:1e-3" \
          "R=$R:8" "ALPHA=$ALPHA:16" "TARGETS=$TARGETS:c_attn,c_proj,c_fc" "LR_WARMUP=$LR_WARMUP:10" "UNTIMED=$UNTIMED:5" \
          "BASE_ROW=$BASE_ROW:1" "RUN_DIR=$RUN_DIR:runs/demo" "CONFIG=$CONFIG:conf/demo.yaml" "JAVA_OPTS=$JAVA_OPTS:-Xmx2g"; do
  val="${kv%:*}"; def="${kv##*:}"
  [ "${val#*=}" = "$def" ] || command="${val%%=*}='${val#*=}' $command"
done
for v in $(compgen -v LR_ || true); do
  case "$v" in LR_WARMUP|LR_vera|LR_full|LR_adalora) ;; *) command="$v='${!v}' $command" ;; esac
done
for v in $(compgen -v R_ || true); do
  [ "$v" = R_adalora ] && [ "${!v}" = 12 ] && continue
  command="$v='${!v}' $command"
done
[ -z "$OPTIONS" ] || command="OPTIONS='$OPTIONS' $command"
[ -z "$METHODS" ] || command="METHODS='$METHODS' $command"

if [ "$SUMMARY_ONLY" != 1 ] && [ "$SKIP_BUILD" != 1 ]; then
  # a reactor package (no install: ~/.m2 is left alone); bench/target/classpath.txt points at pipeline/target
  echo "building spark-lora-pipeline and spark-lora-bench (mvn -o -DskipTests -pl bench -am package)..." >&2
  mvn -B -o -q -DskipTests -pl bench -am package >&2
fi
jar="$(ls "$root"/bench/target/spark-lora-bench-*.jar 2>/dev/null | head -n 1)"
cp_file="$root/bench/target/classpath.txt"
if [ -z "$jar" ] || [ ! -f "$cp_file" ]; then
  echo "bench/target has no jar or classpath.txt; run without SKIP_BUILD=1" >&2
  exit 1
fi
flags="$("$root/bin/jvm-flags.sh")"
quiet() { grep -v -E 'SLF4J|^\[main\] INFO|^\s*$' || true; }   # drops logging noise; never fails the pipe itself
bench() {   # subcommand args...
  # shellcheck disable=SC2086
  java $JAVA_OPTS $flags -cp "$jar:$(cat "$cp_file")" io.sparklora.bench.VariantsBenchmark "$@"
}

# shellcheck source=bench/quiet.sh
source "$root/bench/quiet.sh"

if [ "$SUMMARY_ONLY" != 1 ]; then
  # 1. the task: a pretrained base and the labelled shards, from the pipeline's own stages
  if [ ! -f "$RUN_DIR/stages/pretrain/_SUCCESS" ] || [ ! -f "$RUN_DIR/shards/adapt/_SUCCESS" ]; then
    echo "no finished base and shards in $RUN_DIR: running spark-lora train --config $CONFIG (tokenizer, tokenize, pretrain, train)..." >&2
    jobs_jar="$root/jobs/target/spark-lora-jobs.jar"
    jobs_cp="$root/jobs/target/local-classpath.txt"
    if [ ! -f "$jobs_jar" ] || [ ! -f "$jobs_cp" ] || [ "$SKIP_BUILD" != 1 ]; then
      mvn -B -o -q -DskipTests -pl jobs -am package >&2
    fi
    # what bin/spark-lora runs, without its build step (which installs into ~/.m2)
    # shellcheck disable=SC2046
    java ${SPARK_LORA_JAVA_OPTS:--Xmx8g} $flags -cp "$jobs_jar:$(cat "$jobs_cp")" io.sparklora.jobs.SparkLoraCli train \
        --config "$CONFIG" --output "$RUN_DIR" 2>&1 | { grep -E '^\[|^train:|report:' || true; } >&2
  fi
  prep_end=$(date +%s)

  # 2. one JVM per row
  : > "$runs"
  rows=()
  [ "$BASE_ROW" = 1 ] && rows+=(base)
  if [ -n "$METHODS" ]; then
    read -r -a chosen <<< "$METHODS"
    rows+=("${chosen[@]}")
  else
    while IFS= read -r m; do rows+=("$m"); done < <(bench methods 2>/dev/null | grep -E '^[a-z0-9_]+$')
  fi
  opt_args=()
  for kv in $OPTIONS; do opt_args+=(--option "$kv"); done
  for m in "${rows[@]}"; do
    var="LR_$m"
    lr="${!var:-$LR}"
    var="R_$m"
    rank="${!var:-$R}"
    wait_quiet "$QUIET_WAIT"
    if [ "$m" = base ]; then echo "== base (no training)" >&2; else echo "== $m (lr $lr)" >&2; fi
    bench row --method "$m" --run "$RUN_DIR" --steps "$STEPS" --batch "$BATCH" --seed "$SEED" --lr "$lr" --lr-warmup "$LR_WARMUP" \
        --untimed "$UNTIMED" --r "$rank" --alpha "$ALPHA" --targets "$TARGETS" "${opt_args[@]}" \
        --quiet-wait "$QUIET_WAIT" --work "$out_dir/variants" --out "$runs" 2>&1 | quiet >&2
  done

  # 3. activation bytes per adapted layer, LoRA vs LoRA-FA (d 768, r 8, batch 4 x 256)
  echo "== activation bytes, LoRA vs LoRA-FA" >&2
  bench activations --d 768 --r 8 --batch 4 --seq 256 --seed "$SEED" --out "$acts" 2>&1 | quiet >&2
  end=$(date +%s)
  echo "comparison: $((end - prep_end)) s for the rows (data preparation and build before them: $((prep_end - start)) s)" >&2
  total=$((end - prep_end))
  echo "$total" > "$out_dir/variants-seconds.txt"
else
  total=$(cat "$out_dir/variants-seconds.txt" 2>/dev/null || echo -1)
fi

# 4. the table
doc_args=(--doc docs/VARIANTS.md)
if [ "$WRITE_DOC" != 1 ]; then
  tmp_doc="$(mktemp)"
  printf '<!-- comparison:begin -->\n<!-- comparison:end -->\n' > "$tmp_doc"
  doc_args=(--doc "$tmp_doc")
fi
bench report --runs "$runs" --activations "$acts" "${doc_args[@]}" --json "$out_dir/variants.json" \
    --command "$command" --total-seconds "$total" 2>&1 | quiet
[ -z "${tmp_doc:-}" ] || rm -f "$tmp_doc"
