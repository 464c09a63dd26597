#!/usr/bin/env bash
# Coverage-guided fuzzing, by hand, of the readers of untrusted bytes (pipeline/src/test/java/io/sparklora/fuzz):
# each @FuzzTest in turn runs in Jazzer's fuzzing mode (JAZZER_FUZZ=1) for its budget (FuzzChecks.BUDGET, 1 minute),
# with Jazzer's bug detectors on, starting from the checked-in seeds and the corpus earlier runs grew
# (pipeline/.cifuzz-corpus, git-ignored). ROUNDS>1 repeats each target, so every round resumes where the last stopped.
# The normal build only replays the seeds (regression mode, a few seconds).
#
# A finding stops its target: Jazzer writes the input as crash-<sha1> into the target's seed directory
# (pipeline/src/test/resources/io/sparklora/fuzz/<Class>Inputs/<method>/), where the build replays it from then on.
# Fix the reader, give the input a telling name, and add a named unit test (see docs/RELIABILITY.md, Fuzzing).
#
# Usage: bench/run-fuzz.sh [Class#method ...]      (default: every target)
#        bench/run-fuzz.sh seeds                   (rewrites the generated seeds: SeedCorpus.main)
# Environment (optional): ROUNDS=1  SKIP_BUILD=0
# Output: bench/out/fuzz/<Class>-<method>.log, and one line per run in bench/out/fuzz/summary.txt:
#   target, rounds, executions and seconds as libFuzzer counts them, corpus size, and the finding if any.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ROUNDS=${ROUNDS:-1}; SKIP_BUILD=${SKIP_BUILD:-0}
out="$root/bench/out/fuzz"
mkdir -p "$out"
all=(SafetensorsFuzzTest#safetensorsFile SafetensorsFuzzTest#shardedIndex ModelConfigFuzzTest#configJson
     PeftConfigFuzzTest#adapterConfig PeftConfigFuzzTest#sidecar ArrowShardFuzzTest#blockShard
     ArrowShardFuzzTest#examplesShard ArrowShardFuzzTest#shardManifest YamlFuzzTest#datasetManifest
     YamlFuzzTest#pipelineConfig JsonLinesFuzzTest#jsonLines JsonLinesFuzzTest#labelledJsonLines)

if [ "${1:-}" = seeds ]; then
  mvn -B -o -q -pl pipeline test-compile
  mvn -B -o -q -pl pipeline dependency:build-classpath -Dmdep.outputFile="$out/classpath.txt" -Dmdep.includeScope=test
  java @conf/jvm.options -cp "pipeline/target/test-classes:pipeline/target/classes:$(cat "$out/classpath.txt")" \
    io.sparklora.fuzz.SeedCorpus pipeline/src/test/resources/io/sparklora/fuzz
  exit 0
fi
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
[ "$SKIP_BUILD" = 1 ] || mvn -B -o -q -pl pipeline test-compile

for t in "${targets[@]}"; do
  log="$out/${t//#/-}.log"; : > "$log"
  for r in $(seq 1 "$ROUNDS"); do
    set +e
    # coverage instrumentation of the project and the parsing libraries it hands the bytes to
    JAZZER_FUZZ=1 mvn -B -o -pl pipeline surefire:test -Dtest="io.sparklora.fuzz.$t" -Dsurefire.failIfNoSpecifiedTests=false \
      -Djazzer.hooks=true '-Djazzer.instrument=io.sparklora.**,com.fasterxml.jackson.**,org.apache.arrow.**,org.yaml.**' \
      >> "$log" 2>&1
    rc=$?
    set -e
    [ $rc -eq 0 ] || break
  done
  runs=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | awk '{n += $2; s += $5} END {print n + 0, "executions in", s + 0, "s"}')
  corpus=$(ls "pipeline/.cifuzz-corpus/io.sparklora.fuzz.${t%%#*}/${t#*#}" 2>/dev/null | wc -l)
  finding=$(grep -m1 -E '^== Java Exception:|FuzzTestFindingException' "$log" | cut -c1-200 || true)
  line="$t rounds=$r rc=$rc $runs corpus=$corpus ${finding:+finding: $finding}"
  echo "$line" | tee -a "$out/summary.txt"
done
