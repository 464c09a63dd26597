#!/usr/bin/env bash
# Training-step benchmark: LoRA vs full fine-tuning of a GPT-2-small-shaped model (batch 4 x 256 tokens),
# tokens/s, model FLOPs utilisation against the machine's measured sgemm peak, and peak RSS; the PyTorch
# peer (bench/reference/torch_train_step.py) runs the same step in the same session for comparison.
# Every measurement runs in its own process, so each peak RSS belongs to one mode. See docs/BENCHMARKS.md.
#
# Usage: bench/run-train-step.sh
# Environment (all optional):
#   STEPS=5 WARMUP=3 BATCH=4 SEQ=256   timed steps, untimed warm-up steps, shape of the batch
#   TORCH=1                            also run the PyTorch peer (needs /usr/bin/python3 with torch)
#   TUNED_MALLOC=1                     also run spark-lora with glibc malloc tuned to keep freed memory
#                                      (MALLOC_MMAP_THRESHOLD_/TRIM_THRESHOLD_/TOP_PAD_, see the docs)
#   PROFILE=0                          1: spark-lora runs time every module (slightly slower: see the docs)
#   QUIET_WAIT=600                     before each run, wait up to this many seconds for the CPUs to be
#                                      idle (other work on the machine skews timings); 0: don't wait
#   SKIP_BUILD=0                       1: reuse bench/target from an earlier build
#   JAVA_OPTS=-Xmx4g                   extra JVM options
#   SUMMARY_ONLY=0                     1: only rebuild the table and train-step.json from the last runs
#   SHAPE_ARGS=""                      other model shape for both implementations, e.g. a smoke test:
#                                      SHAPE_ARGS="--layers 2 --d 128 --heads 4 --vocab 1000"
# Columns: tokens/s over all timed steps, the best single step (tokens/s), mean step time, model FLOP/s,
# MFU, peak RSS of the process and peak RSS during the timed steps.
# Output: a table on stdout, every run's JSON line in bench/out/train-step-runs.jsonl and the summary
# (machine, runs, LoRA/full ratios, bars) in bench/out/train-step.json.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

STEPS=${STEPS:-5}
WARMUP=${WARMUP:-3}
BATCH=${BATCH:-4}
SEQ=${SEQ:-256}
TORCH=${TORCH:-1}
TUNED_MALLOC=${TUNED_MALLOC:-1}
PROFILE=${PROFILE:-0}
QUIET_WAIT=${QUIET_WAIT:-600}
SKIP_BUILD=${SKIP_BUILD:-0}
JAVA_OPTS=${JAVA_OPTS:--Xmx4g}
PYTHON=${PYTHON:-/usr/bin/python3}

out_dir="$root/bench/out"
runs="$out_dir/train-step-runs.jsonl"
summary="$out_dir/train-step.json"
mkdir -p "$out_dir"
SUMMARY_ONLY=${SUMMARY_ONLY:-0}
if [ "$SUMMARY_ONLY" = 1 ]; then SKIP_BUILD=1; else : > "$runs"; fi

if [ "$SUMMARY_ONLY" = 1 ]; then
  :
elif [ "$SKIP_BUILD" != 1 ]; then
  echo "building spark-lora-pipeline and spark-lora-bench (mvn -DskipTests install)..." >&2
  mvn -B -q -DskipTests -pl bench -am install >&2
fi
jar="$(ls "$root"/bench/target/spark-lora-bench-*.jar 2>/dev/null | head -n 1)"
cp_file="$root/bench/target/classpath.txt"
if [ "$SUMMARY_ONLY" != 1 ] && { [ -z "$jar" ] || [ ! -f "$cp_file" ]; }; then
  echo "bench/target has no jar or classpath.txt; run without SKIP_BUILD=1" >&2
  exit 1
fi

# JVM flags ND4J needs on Java 17: bin/jvm-flags.sh, else conf/jvm.options, else the parent pom's jvm.opens.
if [ -x "$root/bin/jvm-flags.sh" ]; then
  flags="$("$root/bin/jvm-flags.sh")"
elif [ -f "$root/conf/jvm.options" ]; then
  flags="$(grep -v '^\s*#' "$root/conf/jvm.options" | grep -v '^\s*$' | tr '\n' ' ')"
else
  flags="$(sed -n 's:.*<jvm.opens>\(.*\)</jvm.opens>.*:\1:p' "$root/pom.xml")"
fi

# shellcheck source=bench/quiet.sh
source "$root/bench/quiet.sh"

# shellcheck disable=SC2206
common=(--batch "$BATCH" --seq "$SEQ" --steps "$STEPS" --warmup "$WARMUP" ${SHAPE_ARGS:-})

run_java() {   # label mode [env assignments...]
  local label=$1 mode=$2
  shift 2
  local extra=()
  [ "$PROFILE" = 1 ] && extra+=(--profile)
  [ "$label" = checkpointing ] && extra+=(--checkpointing)
  [ "$label" = keep-attention-probs ] && extra+=(--keep-attention-probs)
  wait_quiet "$QUIET_WAIT"
  echo "== spark-lora $mode ($label)" >&2
  # shellcheck disable=SC2086
  env "$@" java $JAVA_OPTS $flags -cp "$jar:$(cat "$cp_file")" io.sparklora.bench.TrainStepBenchmark \
      --mode "$mode" "${common[@]}" --label "$label" --out "$runs" "${extra[@]}" 2>&1 \
    | grep -v -E '^\{|SLF4J|^\[main\] INFO|^\s*$' >&2
}

run_torch() {   # mode
  wait_quiet "$QUIET_WAIT"
  echo "== torch $1" >&2
  "$PYTHON" bench/reference/torch_train_step.py --mode "$1" "${common[@]}" --threads 2 --label "torch" --out "$runs" > /dev/null
}

if [ "$SUMMARY_ONLY" != 1 ]; then
run_java default lora
run_java checkpointing lora
run_java keep-attention-probs lora
run_java default full
if [ "$TUNED_MALLOC" = 1 ]; then
  # keep freed blocks up to 32 MiB in the heap instead of returning them to the kernel (no page faults on reuse)
  tuned=(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=268435456)
  run_java tuned-malloc lora "${tuned[@]}"
  run_java tuned-malloc full "${tuned[@]}"
fi
if [ "$TORCH" = 1 ]; then
  if "$PYTHON" -c 'import torch' 2>/dev/null; then
    run_torch lora
    run_torch full
  else
    echo "no torch for $PYTHON: skipping the PyTorch peer" >&2
  fi
fi
fi

"$PYTHON" - "$runs" "$summary" <<'EOF'
import json, os, platform, subprocess, sys

runs_path, summary_path = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()

def mem_total_gib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2 ** 20, 1)

def java_version():
    try:
        return subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    except OSError:
        return ""

machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": mem_total_gib(),
           "kernel": platform.release(), "java": java_version()}

def key(r):
    return r["impl"] + ("" if r.get("label") in ("", "default", "torch") else " (" + r["label"] + ")")

groups = {}
for r in runs:
    groups.setdefault(key(r), {})[r["mode"]] = r

# Every process measures sgemm itself, and the figure moves by ~10% from run to run on a shared machine:
# MFU* is against the best sgemm figure of the whole session (both libraries), the machine's peak.
session_peak = max((r.get("sgemm_peak_gflops") or 0) for r in runs) or None
machine["session_sgemm_peak_gflops"] = session_peak
for r in runs:
    if session_peak:
        r["mfu_vs_session_peak"] = round(r["achieved_gflops"] / session_peak, 4)

rows, ratios, bars = [], {}, {}
print()
print(f"session sgemm peak (best of all runs): {session_peak} GFLOP/s")
print(f"{'implementation':<28}{'mode':<6}{'tokens/s':>10}{'best':>8}{'step s':>9}{'GFLOP/s':>9}{'MFU':>8}{'MFU*':>8}{'peak RSS':>10}{'RSS timed':>11}")
for name, modes in groups.items():
    for mode in ("lora", "full"):
        r = modes.get(mode)
        if not r:
            continue
        step = sum(r["step_seconds"]) / len(r["step_seconds"])
        timed = r.get("peak_rss_timed_steps_gib")
        mfu = r.get("mfu")
        mfu_s = r.get("mfu_vs_session_peak")
        print(f"{name:<28}{mode:<6}{r['tokens_per_second']:>10.1f}{r.get('best_step_tokens_per_second', 0):>8.1f}{step:>9.2f}{r['achieved_gflops']:>9.1f}"
              f"{(f'{100 * mfu:.1f}%' if mfu is not None else '-'):>8}"
              f"{(f'{100 * mfu_s:.1f}%' if mfu_s is not None else '-'):>8}{r['peak_rss_gib']:>9.2f}G"
              f"{(f'{timed:.2f}G' if timed else '-'):>11}")
    if "lora" in modes and "full" in modes:
        lo, fu = modes["lora"], modes["full"]
        ratios[name] = {
            "lora_over_full_tokens_per_second": round(lo["tokens_per_second"] / fu["tokens_per_second"], 3),
            "lora_over_full_peak_rss": round(lo["peak_rss_gib"] / fu["peak_rss_gib"], 3),
        }
        if lo.get("peak_rss_timed_steps_gib") and fu.get("peak_rss_timed_steps_gib"):
            ratios[name]["lora_over_full_peak_rss_timed_steps"] = round(lo["peak_rss_timed_steps_gib"] / fu["peak_rss_timed_steps_gib"], 3)
        if lo["impl"] == "spark-lora":
            bars[name] = {
                "lora_faster_than_full": lo["tokens_per_second"] > fu["tokens_per_second"],
                "lora_rss_at_most_a_third_of_full": lo["peak_rss_gib"] <= fu["peak_rss_gib"] / 3,
                "lora_mfu_at_least_50_percent": (lo.get("mfu_vs_session_peak") or lo.get("mfu") or 0) >= 0.5,
                "full_mfu_at_least_50_percent": (fu.get("mfu_vs_session_peak") or fu.get("mfu") or 0) >= 0.5,
            }
print()
for name, r in ratios.items():
    extra = f", timed-steps RSS x{r['lora_over_full_peak_rss_timed_steps']:.2f}" if "lora_over_full_peak_rss_timed_steps" in r else ""
    print(f"{name}: LoRA/full tokens/s x{r['lora_over_full_tokens_per_second']:.2f}, peak RSS x{r['lora_over_full_peak_rss']:.2f}{extra}")
for name, b in bars.items():
    print(f"{name} bars: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in b.items()))
json.dump({"machine": machine, "runs": runs, "ratios": ratios, "bars": bars}, open(summary_path, "w"), indent=2)
print(f"\nwrote {summary_path}")
EOF
