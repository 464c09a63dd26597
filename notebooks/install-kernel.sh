#!/usr/bin/env bash
# Installs the Jupyter kernel "spark-lora-java" (rapaio-jupyter-kernel from Maven Central, a JShell
# kernel) with the project's classes on its classpath: jobs/target/spark-lora-jobs.jar (pipeline and its
# runtime dependencies, XChart included) plus jobs/target/local-classpath.txt (Spark, Hadoop, Scala: the
# "provided" jars). Builds the jobs module first when those are missing. Idempotent; rerun after a build
# changes the classpath.
#
#   notebooks/install-kernel.sh            # kernel in ~/.local/share/jupyter/kernels/spark-lora-java
#
# Environment: KERNEL_JAVA (default: Java 17, the project's runtime), RJK_VERSION (default 3.0.1),
# KERNEL_DIR, MVN_FLAGS (e.g. -o for offline builds).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

RJK_VERSION="${RJK_VERSION:-3.0.1}"
if [[ -z "${KERNEL_JAVA:-}" ]]; then
  if [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then KERNEL_JAVA=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
  else KERNEL_JAVA="$(command -v java)"; fi
fi
"$KERNEL_JAVA" -version 2>&1 | grep -q 'version "17' || echo "warning: $KERNEL_JAVA is not Java 17; Spark 3.5 is tested on 17" >&2

if [[ ! -f jobs/target/spark-lora-jobs.jar || ! -f jobs/target/local-classpath.txt ]]; then
  echo "building jobs/target/spark-lora-jobs.jar" >&2
  mvn -B -q ${MVN_FLAGS:-} -pl jobs -am package -DskipTests
fi

dest="${KERNEL_DIR:-$HOME/.local/share/jupyter/kernels/spark-lora-java}"
mkdir -p "$dest"
jar="$dest/rapaio-jupyter-kernel-$RJK_VERSION.jar"
if [[ ! -f "$jar" ]]; then
  mvn -B -q ${MVN_FLAGS:-} dependency:copy -Dartifact="io.github.padreati:rapaio-jupyter-kernel:$RJK_VERSION" \
      -DoutputDirectory="$dest" -Dmdep.overWriteReleases=false
fi

# rapaio-jupyter-kernel 3.0.1 starts its channel threads racily (tools/kernel-patch/.../LoopThread.java says how): a
# kernel that lost the race never answers. The replacement class is compiled here and put before the kernel's jar.
patch="$dest/patch"
rm -rf "$patch.tmp" && mkdir -p "$patch.tmp"
"$(dirname "$(readlink -f "$KERNEL_JAVA")")/javac" --release 17 -d "$patch.tmp" \
    "$root/notebooks/tools/kernel-patch/org/rapaio/jupyter/kernel/channels/LoopThread.java"
rm -rf "$patch" && mv "$patch.tmp" "$patch"

classpath="$root/jobs/target/spark-lora-jobs.jar:$(cat "$root/jobs/target/local-classpath.txt")"
# The JVM flags Spark and ND4J need (conf/jvm.options), one argv entry each, then headless AWT for XChart.
/usr/bin/python3 - "$dest" "$KERNEL_JAVA" "$jar" "$patch" "$classpath" "$root/conf/jvm.options" <<'PY'
import json, sys
dest, java, jar, patch, classpath, options = sys.argv[1:]
flags = [l.strip() for l in open(options) if l.strip() and not l.strip().startswith('#')]
spec = {
    "argv": [java, *flags, "-Djava.awt.headless=true", "-Xmx4g", "-cp", f"{patch}:{jar}",
             "org.rapaio.jupyter.kernel.MainApp", "{connection_file}"],
    "display_name": "Java 17 (spark-lora)",
    "language": "java",
    "interrupt_mode": "message",
    # rapaio-jupyter-kernel splits RJK_CLASSPATH on ';' (not the platform's ':').
    "env": {"RJK_CLASSPATH": ";".join(e for e in classpath.split(":") if e), "RJK_TIMEOUT_MILLIS": "-1", "RJK_COMPILER_OPTIONS": ""},
}
with open(f"{dest}/kernel.json.tmp", "w") as f:
    json.dump(spec, f, indent=1)
import os
os.replace(f"{dest}/kernel.json.tmp", f"{dest}/kernel.json")
PY
/usr/bin/python3 -c 'from jupyter_client.kernelspec import KernelSpecManager as K; import sys; sys.exit(0 if "spark-lora-java" in K().find_kernel_specs() else 1)' \
  || { echo "jupyter does not see the kernel in $dest" >&2; exit 1; }
echo "kernel spark-lora-java installed in $dest (rapaio-jupyter-kernel $RJK_VERSION, $("$KERNEL_JAVA" -version 2>&1 | head -1))"
