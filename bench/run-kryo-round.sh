#!/usr/bin/env bash
# Kryo for ND4J arrays: what moves each round (the round state's broadcast, the tasks' gradient sums and importance
# sums, the driver's sum) as today's float arrays and as ND4J arrays under Deeplearning4j Spark's Nd4jRegistrator,
# side by side in one Spark context on local[2]. Prints one JSON line per shape (demo, then GPT-2 small LoRA r 8 on
# c_attn), each with the CPU model. See docs/BENCHMARKS.md, "Deeplearning4j Spark: Kryo for ND4J arrays".
#
# Usage: bench/run-kryo-round.sh            ROUNDS=50 WARMUP=10 by default
#        SKIP_BUILD=1 bench/run-kryo-round.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ "${SKIP_BUILD:-0}" = 1 ] || mvn -q -B -DskipTests -pl bench -am install
cp="bench/target/spark-lora-bench-0.1.0-SNAPSHOT.jar:$(cat bench/target/classpath.txt)"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
run() { java -Xmx4g $(bin/jvm-flags.sh) -cp "$cp" io.sparklora.bench.KryoRoundBenchmark --cpu "$cpu" \
          --rounds "${ROUNDS:-50}" --warmup "${WARMUP:-10}" "$@" 2>/dev/null | grep '^{'; }
mkdir -p bench/out
{
  run --shape demo
  run --shape gpt2-small
} | tee bench/out/kryo-round.jsonl
