#!/usr/bin/env bash
# Distributed-round benchmark: the same LoRA training step (same total batch) in one process and as rounds
# of the Spark train stage (gradient averaging over 2 partitions, local[2]), side by side in one JVM.
# Prints one JSON line per shape. See docs/BENCHMARKS.md.
#
# Usage: bench/run-distributed-round.sh            (GPT-2-small shape, then the demo's shape)
#        SKIP_BUILD=1 bench/run-distributed-round.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ "${SKIP_BUILD:-0}" = 1 ] || mvn -q -B -DskipTests -pl bench -am install
cp="bench/target/spark-lora-bench-0.1.0-SNAPSHOT.jar:$(cat bench/target/classpath.txt)"
run() { java -Xmx6g $(bin/jvm-flags.sh) -cp "$cp" io.sparklora.bench.DistributedRoundBenchmark "$@" 2>/dev/null | grep '^{'; }
mkdir -p bench/out
{
  run
  run --layers 2 --d 128 --heads 4 --vocab 2048 --seq 128 --batch-per-task 4 --rounds 20 --warmup 5
} | tee bench/out/distributed-round.jsonl
