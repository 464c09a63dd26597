#!/usr/bin/env bash
# Generation benchmark: greedy tokens/s of a randomly initialised GPT-2-shaped model, base vs LoRA merged into
# the weights vs LoRA r = 8 on c_attn unmerged, with the KV cache and without, batch 1 and batch 8; the cells run
# interleaved and each reports its median. See docs/BENCHMARKS.md ("Generation").
#
# Usage: bench/run-generation.sh [extra GenerationBenchmark arguments]
#   demo shape (default): --layers 2 --d 128 --heads 4 --vocab 2048
#   GPT-2 small:          --layers 12 --d 768 --heads 12 --vocab 50257 --new 8 --reps 5 --warmup 1 --uncached 0
# Other arguments: --prompt 16 --new 32 --batch 8 --rank 8 --reps 5 --warmup 2 --uncached 1 --label gen
# Environment: SKIP_BUILD=1 reuses pipeline/target/classes, bench/target/classes and bench/target/classpath.txt;
#   QUIET_WAIT=600 waits up to this many seconds for idle CPUs first (0: don't); JAVA_OPTS=-Xmx3g.
# Output: the table on stdout and a JSON line appended to bench/out/generation-runs.jsonl.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
SKIP_BUILD=${SKIP_BUILD:-0}
QUIET_WAIT=${QUIET_WAIT:-600}
JAVA_OPTS=${JAVA_OPTS:--Xmx3g}
if [ "$SKIP_BUILD" != 1 ]; then
  # compiled in one reactor, so the bench runs against this tree's pipeline classes
  mvn -B -q -o -pl pipeline,bench compile >&2
  mvn -B -q -o -pl bench dependency:build-classpath -Dmdep.outputFile=target/classpath.txt -Dmdep.includeScope=compile >&2
fi
mkdir -p bench/out
# shellcheck source=quiet.sh
source bench/quiet.sh
wait_quiet "$QUIET_WAIT"
flags="$(bin/jvm-flags.sh)"
# shellcheck disable=SC2086
java $JAVA_OPTS $flags -cp "pipeline/target/classes:bench/target/classes:$(cat bench/target/classpath.txt)" \
  io.sparklora.bench.GenerationBenchmark --out bench/out/generation-runs.jsonl "$@"
