#!/usr/bin/env bash
# Soak run: the demo pipeline (conf/demo.yaml) with ROUNDS_FACTOR x its train rounds and 4 partitions, on
# local-cluster (2 executor JVMs), sampling every INTERVAL seconds the driver's and each executor's RSS, open file
# descriptors, threads and JVM native memory (NMT), and logging every GC's heap-after figure. Each sample carries
# the train round reached (from the run's metrics.jsonl). At the end bench/soak.py fits, over the rounds after the
# warm-up, the slope per round of each figure (least squares) and prints it; a leak shows as a steady slope.
#
# Usage: bench/run-soak.sh                      (10x the demo's 100 rounds: 1000 rounds)
#        ROUNDS_FACTOR=3 bench/run-soak.sh      (a shorter run: 300 rounds)
#        SKIP_BUILD=1 MASTER='local[2]' bench/run-soak.sh
#        MAX_SECONDS=1800 bench/run-soak.sh    (stop after 30 minutes and fit the rounds reached)
#        FULL_GC_EVERY=60 bench/run-soak.sh     (a full collection in every JVM each minute: tells garbage from a leak)
#        MALLOC_ARENAS=2 FULL_GC_EVERY=60 bench/run-soak.sh   (executors with MALLOC_ARENA_MAX=2: tells glibc's per-thread
#                                               arenas' fragmentation from a leak of live native buffers)
# Output: bench/out/soak/{soak.yaml, samples.jsonl, gc-*.log, summary.json, run.log} and the run under bench/out/soak/run.
#
# The rounds under test are train's; lora_drop and full_finetune (60 rounds and 60 steps in the demo, which no
# factor multiplies) are switched off so that the time goes to them. Executors get 2 GiB each (heap), the driver 4 GiB.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
factor="${ROUNDS_FACTOR:-10}"
partitions="${PARTITIONS:-4}"
interval="${INTERVAL:-5}"
max_seconds="${MAX_SECONDS:-0}"       # >0: stop the run after this long and analyse the rounds it reached
master="${MASTER:-local-cluster[2,1,2048]}"
out="$root/bench/out/soak"
# the build is package, not install: the jobs jar shades the pipeline classes of this checkout
[ "${SKIP_BUILD:-0}" = 1 ] || mvn -B -o -q -pl jobs -am -DskipTests package
cp="$root/jobs/target/spark-lora-jobs.jar:$(cat "$root/jobs/target/local-classpath.txt")"
rm -rf "$out"
mkdir -p "$out"

# local-cluster outside a Spark distribution (see pipeline/src/test/.../SparkClusters.java): a Spark home whose jars/
# exists (empty), the Scala version for the executor launcher, and the class path and JVM flags for the executors
spark_home="$(mktemp -d -t spark-lora-soak-home.XXXXXX)"
mkdir -p "$spark_home/jars"
trap 'rm -rf "$spark_home"' EXIT
flags="$(bin/jvm-flags.sh)"

python3 - "$root/conf/demo.yaml" "$out/soak.yaml" "$factor" "$partitions" "$out" "$cp" "$flags" "${MALLOC_ARENAS:-}" <<'EOF'
import sys, yaml, json
src, dst, factor, partitions, out, cp, flags, arenas = sys.argv[1:]
cfg = yaml.safe_load(open(src))
cfg["name"] = "soak"
cfg["output"] = out + "/run"
cfg["train"]["rounds"] = cfg["train"]["rounds"] * int(factor)
cfg["data"]["partitions"] = int(partitions)
cfg["lora_drop"]["enabled"] = False
cfg["full_finetune"]["enabled"] = False
conf = cfg.setdefault("spark", {}).setdefault("conf", {})
conf.update({
    "spark.executor.memory": "2g",
    "spark.executor.extraClassPath": cp,
    "spark.executor.extraJavaOptions": flags + " -XX:NativeMemoryTracking=summary"
        + " -Xlog:gc:file=" + out + "/gc-executor-%p.log:uptimemillis,timemillis",
    "spark.executorEnv.SPARK_SCALA_VERSION": "2.12",
})
if arenas:
    conf["spark.executorEnv.MALLOC_ARENA_MAX"] = arenas
yaml.safe_dump(cfg, open(dst, "w"), sort_keys=False, width=1 << 20)
EOF

export SPARK_HOME="$spark_home"
export SPARK_LORA_CLASSPATH="$cp"
export SPARK_LORA_JAVA_OPTS="-Xmx4g -XX:NativeMemoryTracking=summary -Xlog:gc:file=$out/gc-driver.log:uptimemillis,timemillis"
python3 bench/soak.py --interval "$interval" --full-gc-every "${FULL_GC_EVERY:-0}" --max-seconds "$max_seconds" --out "$out" --metrics "$out/run/metrics.jsonl" -- \
  bin/spark-lora pipeline --config "$out/soak.yaml" --master "$master"
