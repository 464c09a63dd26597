#!/usr/bin/env bash
# Executes every notebook from a clean state and checks its outputs (docs/NOTEBOOKS.md):
#   - notebooks/*.ipynb with the spark-lora-java kernel (nbclient): no cell error, an image/png output,
#     the training loss falls (LOSS line), the adapter's parameter count matches its file (PARAMS line);
#   - notebooks/*.zpln: the %spark paragraphs in one Scala 2.12 interpreter (tools/ZeppelinNoteRunner.java).
# Executed copies go to a temporary directory (printed); the committed notebooks are never written,
# except with --update, which copies the executed .ipynb files over them (to refresh their outputs).
# Needs: Java 17, Maven, /usr/bin/python3 with nbclient (Debian: python3-nbclient python3-nbconvert
# jupyter-notebook). MVN_FLAGS=-o builds offline.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
update=false
[[ "${1:-}" == "--update" ]] && update=true

work="$(mktemp -d "${TMPDIR:-/tmp}/spark-lora-notebooks.XXXXXX")"
echo "executed notebooks and the run go to $work"
export SPARK_LORA_NOTEBOOK_RUN="$work/run"   # both notebooks use this run; it starts empty
start=$SECONDS

notebooks/install-kernel.sh
/usr/bin/python3 notebooks/tools/execute_notebooks.py "$work/executed" notebooks/quick-start.ipynb notebooks/explore-run.ipynb
echo "jupyter notebooks: $((SECONDS - start)) s"

# Zeppelin note: Scala 2.12.18 (Spark 3.5's Scala, the one Zeppelin's Spark interpreter uses for 2.12).
zstart=$SECONDS
scala_dir="$root/notebooks/target/scala"
[[ -f "$scala_dir/scala-compiler-2.12.18.jar" ]] || mvn -B -q ${MVN_FLAGS:-} dependency:copy \
    -Dartifact=org.scala-lang:scala-compiler:2.12.18 -DoutputDirectory="$scala_dir"
cp="$scala_dir/scala-compiler-2.12.18.jar:$root/jobs/target/spark-lora-jobs.jar:$(cat "$root/jobs/target/local-classpath.txt")"
for note in notebooks/*.zpln; do
  log="$work/$(basename "$note").log"
  # shellcheck disable=SC2046
  (cd "$work" && SPARK_LORA_HOME="$root" java $("$root/bin/jvm-flags.sh") -Djava.awt.headless=true -cp "$cp" \
      "$root/notebooks/tools/ZeppelinNoteRunner.java" "$root/$note") > "$log" 2>&1 \
    || { tail -40 "$log" >&2; echo "FAIL $note (log: $log)" >&2; exit 1; }
  loss="$(grep -o 'LOSS first=[^ ]* last=[^ ]*' "$log" || true)"
  [[ -n "$loss" ]] || { echo "FAIL $note: no LOSS line (log: $log)" >&2; exit 1; }
  grep -q '^%html <img src="data:image/png;base64,' "$log" || { echo "FAIL $note: no PNG (log: $log)" >&2; exit 1; }
  echo "ok   $note in $((SECONDS - zstart)) s: $loss, $(grep -o '[0-9]* %spark paragraphs ran' "$log")"
done

if $update; then
  cp "$work"/executed/*.ipynb notebooks/
  echo "updated the committed notebooks' outputs"
fi
echo "notebooks: all checks passed in $((SECONDS - start)) s"
