#!/usr/bin/env python3
"""Writes notebooks/quick-start.ipynb and explore-run.ipynb (the cells, no outputs) from the cell texts
below; run-notebooks.sh --update executes them and commits nothing itself. Kept so that the cells are
reviewed as code here rather than as JSON."""
import json, pathlib, sys

here = pathlib.Path(__file__).resolve().parent.parent
KERNEL = {"kernelspec": {"name": "spark-lora-java", "display_name": "Java 17 (spark-lora)", "language": "java"},
          "language_info": {"name": "java", "file_extension": ".jshell", "mimetype": "text/x-java-source"}}

SETUP = '''import java.nio.file.*;
import java.util.*;
import org.apache.spark.sql.SparkSession;
import io.sparklora.api.*;
import io.sparklora.report.Charts;
import org.knowm.xchart.BitmapEncoder;

// The project directory (the one with conf/): the notebook runs from notebooks/ or from the project.
Path root = Path.of("").toAbsolutePath();
while (!Files.isDirectory(root.resolve("conf"))) root = root.getParent();

// Spark in this JVM. The --add-opens flags Spark needs on Java 17 are in the kernel's JVM arguments
// (notebooks/install-kernel.sh copies them from conf/jvm.options): a running JVM cannot take them.
SparkSession spark = SparkSession.builder()
        .master("local[2]")
        .appName("spark-lora notebook")
        .config("spark.ui.enabled", "false")
        .getOrCreate();
SparkLora lora = SparkLora.on(spark);

// The demo's data and stages at toy size (conf/notebook-quickstart.yaml), paths made absolute. The run
// goes to runs/notebook-quickstart unless SPARK_LORA_NOTEBOOK_RUN names another directory.
var cfg = lora.config(root.resolve("conf/notebook-quickstart.yaml").toString());
cfg.datasets.adapt = root.resolve(cfg.datasets.adapt).toString();
cfg.datasets.pretrain = root.resolve(cfg.datasets.pretrain).toString();
cfg.output = Optional.ofNullable(System.getenv("SPARK_LORA_NOTEBOOK_RUN"))
        .orElse(root.resolve("runs/notebook-quickstart").toString());
System.out.println("run directory: " + cfg.output);'''

def md(text): return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n").splitlines(True)}
def code(text): return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": text.strip("\n").splitlines(True)}

quick = [
md('''# spark-lora quick start

Fine-tune a small language model with LoRA on Apache Spark, from Java, in one notebook:
tokenize the demo data (`datasets-manifests/`), pretrain a toy base model, train a LoRA adapter with
data-parallel rounds on Spark, evaluate base against adapted, generate text and plot the loss.

Kernel: **Java 17 (spark-lora)**, installed by `notebooks/install-kernel.sh` (see `docs/NOTEBOOKS.md`).
The config is `conf/notebook-quickstart.yaml`: the demo at toy size, so the whole notebook takes a few
minutes on 2 cores; the numbers are not meant to be good.'''),
code(SETUP),
md('''## Tokenize
The `tokenize` stage learns a byte-level BPE tokenizer from the datasets and writes token shards, one
per Spark partition. Stages that are already complete in the run directory are skipped.'''),
code('''Run run = lora.run(cfg, "tokenize");
System.out.println("tokenize: " + run.stageStatus("tokenize") + ", " + run.report().path("tokenize").path("tokens").asLong() + " tokens");'''),
md('''## Train
`train` pretrains the toy base first (it has no `base.path`), then trains the LoRA adapter: each round,
every task computes gradients on its shard and the driver averages them. `lora_drop` then ranks the
adapted layers by importance, keeps the important ones and lets the rest share one adapter.'''),
code('''run = lora.run(cfg, "train", "lora_drop");
System.out.println(run.adapterInfo());
System.out.println("trainable: " + run.parameters());'''),
md('''## Evaluate
Perplexity (and label accuracy on the labelled mail) of the base, adapted and merged models.'''),
code('''run = lora.run(cfg, "evaluate");
var eval = run.report().path("eval");
for (String model : List.of("base", "adapted", "merged"))
    System.out.printf("%-8s perplexity %8.2f%n", model, eval.path(model).path("perplexity").asDouble());'''),
md('''## Generate
Greedy continuation with the adapted model and with the base, in this JVM.'''),
code('''String prompt = "Subject: free money";
System.out.println("adapted: " + run.generate(prompt, 16));
System.out.println("base:    " + run.generateWithBase(prompt, 16));'''),
md('''## Loss
The training loss per round (`metrics.jsonl`), drawn by `io.sparklora.report.Charts`, the code that draws
report.html's charts. The `LOSS` line is what CI checks.'''),
code('''double[] loss = run.metrics().series("train", "loss").values();
System.out.printf(Locale.ROOT, "LOSS first=%.4f last=%.4f rounds=%d%n", loss[0], loss[loss.length - 1], loss.length);
BitmapEncoder.getBufferedImage(Charts.lossCurves(run.metrics().rows(), run.report()))'''),
code('''spark.stop();'''),
]

explore = [
md('''# Explore a run

Reads a run directory (`report.json`, `metrics.jsonl`, the adapter) and looks inside: stage figures, loss
curves, LoRA-drop's importance per layer, the adapter's tensors and parameter count.

It opens the run the quick start wrote (`runs/notebook-quickstart`); from a clean checkout it first runs
the same toy pipeline itself (complete stages are skipped, so after the quick start this takes seconds).'''),
code(SETUP),
code('''Run run = lora.run(cfg);   // every stage; those already complete are skipped
var report = run.report();
for (var it = report.fields(); it.hasNext(); ) {
    var e = it.next();
    if (e.getValue().has("status"))
        System.out.printf(Locale.ROOT, "%-14s %-8s %6.1f s%n", e.getKey(), e.getValue().path("status").asText(), e.getValue().path("seconds").asDouble());
}
var metrics = run.metrics();
for (String phase : metrics.phases())
    System.out.println(phase + ": " + metrics.series(phase, "loss").size() + " loss values");'''),
md('''## Loss curves
LoRA, and LoRA-drop's warm-up on every layer and its training of the reduced set.'''),
code('''BitmapEncoder.getBufferedImage(Charts.lossCurves(metrics.rows(), report))'''),
md('''## LoRA-drop: importance per layer
Bars: a layer's importance (the mean squared norm of its LoRA output on a sample), kept layers in blue,
the layers that share one adapter in orange; line: the cumulative share against the threshold.'''),
code('''var drop = io.sparklora.report.LoraDropLayers.of(report);
for (var l : drop.layers())
    System.out.printf(Locale.ROOT, "%-28s %-7s importance %.3e  cumulative %5.1f%%%n", l.name(), l.role(), l.importance(), 100 * l.cumulative());
BitmapEncoder.getBufferedImage(Charts.importance(report))'''),
md('''## The adapter's tensors
The adapter directory has the PEFT layout (`adapter_config.json`, `adapter_model.safetensors`): names,
shapes and Frobenius norms of its tensors, then the parameter count from the config alone
(`ParameterCounter`), which must equal the number of values in the file.'''),
code('''import io.sparklora.adapters.*;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.model.ModelConfig;

String dir = run.adapterDir();
Path adapterDir = dir.startsWith("file:") ? Path.of(java.net.URI.create(dir)) : Path.of(dir);
long values = 0;
try (var st = SafetensorsReader.open(adapterDir.resolve(PeftAdapterFormat.WEIGHTS_FILE))) {
    for (String name : st.names()) {
        long[] shape = st.shape(name);
        values += Arrays.stream(shape).reduce(1, (a, b) -> a * b);
        System.out.printf(Locale.ROOT, "%-62s %-10s norm %.4f%n", name, Arrays.toString(shape), st.read(name).norm2Number().doubleValue());
    }
}
var adapterConfig = PeftAdapterFormat.readConfig(adapterDir.resolve(PeftAdapterFormat.CONFIG_FILE));
var modelConfig = ModelConfig.load(Path.of(cfg.output, "base"));
var counted = ParameterCounter.report(modelConfig, adapterConfig);
System.out.println("values in the file: " + values + "; ParameterCounter: " + counted);
System.out.println("PARAMS file=" + values + " counted=" + counted.trainable());'''),
code('''spark.stop();'''),
]

for name, cells in (("quick-start.ipynb", quick), ("explore-run.ipynb", explore)):
    nb = {"cells": cells, "metadata": KERNEL, "nbformat": 4, "nbformat_minor": 5}
    for i, c in enumerate(nb["cells"]):
        c["id"] = f"{name.split('.')[0]}-{i}"
    (here / name).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    print("wrote", here / name)
