#!/usr/bin/env python3
"""Writes notebooks/quick-start.zpln (Zeppelin JSON note) from the paragraph texts below."""
import json
paras = [
("Spark LoRA quick start", "%md\n## spark-lora quick start (Zeppelin, Scala)\nTokenize the demo data, pretrain a toy base, train a LoRA adapter on Spark, evaluate, generate text and plot the loss.\nThe Spark interpreter needs the project's jar on its classpath: add `jobs/target/spark-lora-jobs.jar` to the interpreter's dependencies (or `spark.jars`), the JVM flags of `conf/jvm.options` to `spark.driver.extraJavaOptions`, and `SPARK_LORA_HOME` (the checkout) to its environment; see docs/NOTEBOOKS.md."),
("Configuration", """%spark
import java.nio.file.{Files, Path, Paths}
import io.sparklora.api.{Run, SparkLora}
import io.sparklora.report.Charts

// The project directory (with conf/ and datasets-manifests/): $SPARK_LORA_HOME, else the working
// directory or one above it.
val root: Path = sys.env.get("SPARK_LORA_HOME").map(Paths.get(_)).getOrElse(
  Iterator.iterate(Paths.get("").toAbsolutePath)(_.getParent).takeWhile(_ != null)
    .find(p => Files.isDirectory(p.resolve("conf")))
    .getOrElse(sys.error("set SPARK_LORA_HOME to the spark-lora checkout")))
val lora = SparkLora.on(spark)
val cfg = lora.config(root.resolve("conf/notebook-quickstart.yaml").toString)
cfg.datasets.adapt = root.resolve(cfg.datasets.adapt).toString
cfg.datasets.pretrain = root.resolve(cfg.datasets.pretrain).toString
cfg.output = Files.createTempDirectory("spark-lora-zeppelin").resolve("run").toString
println(s"run directory: ${cfg.output}")"""),
("Train and evaluate", """%spark
// tokenizer, tokenize, pretrain (toy base), train (LoRA on Spark), lora_drop, evaluate
val run: Run = lora.run(cfg)
println(s"stages: " + Seq("tokenize", "pretrain", "train", "lora_drop", "evaluate").map(s => s + "=" + run.stageStatus(s)).mkString(" "))"""),
("Loss", """%spark
val loss = run.metrics.series("train", "loss").values
println(f"LOSS first=${loss.head}%.4f last=${loss.last}%.4f steps=${loss.length}")
require(loss.last < loss.head, "the training loss did not fall")
val eval = run.report.path("eval")
println(f"perplexity base=${eval.path("base").path("perplexity").asDouble}%.1f adapted=${eval.path("adapted").path("perplexity").asDouble}%.1f")"""),
("Generate", """%spark
println("adapted: " + run.generate("Subject: free money", 16))
println("base:    " + run.generateWithBase("Subject: free money", 16))"""),
("Loss curve", """%spark
// In Zeppelin, %html output shows the PNG inline.
val png = Charts.png(Charts.lossCurves(run.metrics.rows, run.report))
println("%html <img src=\\"data:image/png;base64," + java.util.Base64.getEncoder.encodeToString(png) + "\\"/>")"""),
]
note = {"paragraphs": [], "name": "spark-lora quick start", "id": "2SPARKLORAQS", "defaultInterpreterGroup": "spark",
        "version": "0.11.2", "noteParams": {}, "noteForms": {}, "angularObjects": {},
        "config": {"isZeppelinNotebookCronEnable": False}, "info": {}}
for i, (title, text) in enumerate(paras):
    md = text.startswith("%md")
    note["paragraphs"].append({
        "title": title, "text": text,
        "config": {"editorSetting": {"language": "markdown" if md else "scala", "editOnDblClick": md},
                   "editorMode": "ace/mode/markdown" if md else "ace/mode/scala", "title": True, "editorHide": md},
        "settings": {"params": {}, "forms": {}}, "apps": [], "runtimeInfos": {}, "progressUpdateIntervalMs": 500,
        "jobName": f"paragraph_{i+1}", "id": f"paragraph_sparklora_{i+1}", "status": "READY"})
import pathlib
json.dump(note, open(pathlib.Path(__file__).resolve().parent.parent / "quick-start.zpln", "w"), indent=2, ensure_ascii=False)
