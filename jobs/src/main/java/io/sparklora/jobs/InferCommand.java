package io.sparklora.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.api.AdapterSet;
import io.sparklora.spark.SparkSetup;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.util.AtomicFiles;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code spark-lora generate} and {@code spark-lora score}: mixed-adapter inference over a table. Each row names its
 * adapter in a column ({@code __base__} or empty: the base alone); rows of every adapter share each batch, one forward
 * of the frozen base for all of them, each adapter applied unmerged to its own rows ({@link AdapterSet}). {@code generate}
 * appends each row's greedy continuation (KV cache, rows of different lengths batched), {@code score} its mean token
 * loss. On Spark the input is any table Spark reads (JSON lines, Parquet, CSV with a header, ORC) and the output is
 * written in the same format; with {@code --local} it is a JSON-lines file read and written in this process.
 */
final class InferCommand {
    private static final ObjectMapper JSON = new ObjectMapper();

    static Args.Spec spec(String command) {
        boolean gen = command.equals("generate");
        List<Args.Option> opts = new ArrayList<>(List.of(
                Args.Option.flag("local", "run in this process without Spark; --input and --out are JSON-lines files"),
                Args.Option.value("master", "URL", "spark-submit's master, else local[*]", "Spark master (without --local)"),
                Args.Option.required("model", "DIR", "Hugging Face base model directory (with its tokenizer.json)"),
                Args.Option.required("adapters", "NAME=DIR,...", "the adapters rows may name, each a PEFT adapter directory over this base"),
                Args.Option.required("input", "URI", "the table: JSON lines, Parquet, CSV (with a header) or ORC"),
                Args.Option.required("out", "URI", "where the table with the new column goes (same format as the input); must not exist"),
                Args.Option.value("format", "NAME", "from --input's extension", "json, parquet, csv or orc (without --local)"),
                Args.Option.value("text-col", "NAME", "text", "the column of texts"),
                Args.Option.value("adapter-col", "NAME", "adapter", "the column naming each row's adapter (" + AdapterSet.BASE + " or empty: the base)"),
                Args.Option.value("output-col", "NAME", gen ? "continuation" : "loss", "the new column"),
                Args.Option.value("batch-rows", "N", "8", "rows per batch: one mixed-adapter forward each"),
                Args.Option.value("threads", "N", "every core", "with --local: engine threads (libnd4j and OpenBLAS)")));
        if (gen) opts.add(Args.Option.value("max-new", "N", "40", "new tokens per row at most (stops early at end-of-text)"));
        return new Args.Spec(command,
                gen ? "Greedy continuations of a table's texts, each row under the adapter its adapter column names, rows of all adapters batched together."
                        : "Mean token loss of a table's texts, each row under the adapter its adapter column names, rows of all adapters batched together.",
                opts.toArray(Args.Option[]::new));
    }

    private InferCommand() {}

    static int run(String command, String[] argv) throws Exception {
        Args a = spec(command).parse(argv);
        boolean gen = command.equals("generate");
        Map<String, String> adapters = adapters(a.require("adapters"));
        int maxNew = gen ? a.getInt("max-new") : -1;
        int batchRows = a.getInt("batch-rows");
        if (batchRows < 1) throw new Args.UsageException("--batch-rows must be at least 1");
        if (gen && maxNew < 0) throw new Args.UsageException("--max-new must be at least 0");
        String textCol = a.get("text-col"), adapterCol = a.get("adapter-col"), outCol = a.get("output-col");
        if (a.flag("local")) {
            if (a.has("threads")) io.sparklora.model.EngineThreads.set(a.getInt("threads"));
            return runLocal(a.require("model"), adapters, Path.of(a.require("input")), Path.of(a.require("out")), textCol, adapterCol, outCol, maxNew,
                    batchRows);
        }
        String format = a.has("format") ? a.get("format") : formatOf(a.require("input"));
        if (!List.of("json", "parquet", "csv", "orc").contains(format)) throw new Args.UsageException("--format: json, parquet, csv or orc, got '" + format + "'");
        String master = a.has("master") ? a.get("master") : System.getProperty("spark.master") != null ? null : "local[*]";
        try (JavaSparkContext sc = SparkSetup.context("spark-lora " + command, master, Map.of())) {
            Configuration conf = sc.hadoopConfiguration();
            String out = a.require("out");
            if (HadoopFiles.exists(conf, out)) throw new IllegalArgumentException("--out " + out + " already exists; choose another or delete it");
            AdapterSet set = set(conf, a.require("model"), adapters);
            SparkSession spark = SparkSession.builder().sparkContext(sc.sc()).getOrCreate();
            var reader = spark.read().format(format);
            if (format.equals("csv")) reader = reader.option("header", "true");
            Dataset<Row> in = reader.load(a.require("input"));
            in = checkedNames(in, adapterCol, adapters);
            Dataset<Row> result = gen ? set.generate(in, textCol, adapterCol, outCol, maxNew, batchRows) : set.meanLoss(in, textCol, adapterCol, outCol, batchRows);
            var writer = result.write().format(format);
            if (format.equals("csv")) writer = writer.option("header", "true");
            writer.save(out);     // Spark's committer: the directory appears complete, with _SUCCESS, or not at all
            System.out.printf(Locale.ROOT, "%s: wrote %s (%s) with column %s%n", command, out, format, outCol);
        }
        return 0;
    }

    /**
     * The table with empty adapter names read as null (the base), after one pass over the adapter column that refuses
     * names outside {@code adapters}, so that a typo fails here with its name rather than inside a task.
     */
    private static Dataset<Row> checkedNames(Dataset<Row> in, String adapterCol, Map<String, String> adapters) {
        if (!java.util.Arrays.asList(in.columns()).contains(adapterCol)) {
            throw new IllegalArgumentException("--input has no column '" + adapterCol + "' (--adapter-col) among " + java.util.Arrays.toString(in.columns()));
        }
        org.apache.spark.sql.Column c = org.apache.spark.sql.functions.col(adapterCol);
        Dataset<Row> out = in.withColumn(adapterCol, org.apache.spark.sql.functions.when(c.equalTo(""), org.apache.spark.sql.functions.lit(null))
                .otherwise(c));
        List<String> unknown = new ArrayList<>();
        for (Row r : out.select(adapterCol).distinct().collectAsList()) {
            if (r.isNullAt(0)) continue;
            String n = String.valueOf(r.get(0));
            if (!n.equals(AdapterSet.BASE) && !adapters.containsKey(n)) unknown.add(n);
        }
        if (!unknown.isEmpty()) {
            throw new IllegalArgumentException("--input: rows name adapters " + unknown + " that are not among --adapters " + adapters.keySet()
                    + " (" + AdapterSet.BASE + " or empty: the base)");
        }
        return out;
    }

    /** {@code name=dir,name=dir} in order; names must be unique and not the base's. */
    static Map<String, String> adapters(String list) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String item : list.split(",")) {
            int eq = item.indexOf('=');
            if (eq <= 0 || eq == item.length() - 1) throw new Args.UsageException("--adapters: expected NAME=DIR, got '" + item + "'");
            String name = item.substring(0, eq).trim(), dir = item.substring(eq + 1).trim();
            if (name.equals(AdapterSet.BASE)) throw new Args.UsageException("--adapters: " + AdapterSet.BASE + " means the base alone; name the adapter otherwise");
            if (out.put(name, dir) != null) throw new Args.UsageException("--adapters: the name '" + name + "' appears twice");
        }
        return out;
    }

    static String formatOf(String input) {
        String n = input.toLowerCase(Locale.ROOT).replaceAll("/+$", "");
        if (n.endsWith(".jsonl") || n.endsWith(".json") || n.endsWith(".ndjson")) return "json";
        if (n.endsWith(".parquet")) return "parquet";
        if (n.endsWith(".csv")) return "csv";
        if (n.endsWith(".orc")) return "orc";
        throw new Args.UsageException("cannot tell the format of --input " + input + " from its name: give --format json, parquet, csv or orc");
    }

    private static AdapterSet set(Configuration conf, String model, Map<String, String> adapters) {
        AdapterSet set = AdapterSet.on(conf, model);
        adapters.forEach(set::add);
        return set;
    }

    /** The JSON-lines form: every input line one object; the output has the same objects with the new field. */
    private static int runLocal(String model, Map<String, String> adapters, Path input, Path out, String textCol, String adapterCol, String outCol,
                                int maxNew, int batchRows) throws Exception {
        if (!Files.isRegularFile(input)) throw new IllegalArgumentException("--input " + input + " does not exist or is not a file");
        if (Files.exists(out)) throw new IllegalArgumentException("--out " + out + " already exists; choose another or delete it");
        AdapterSet set = set(new Configuration(), model, adapters);
        List<ObjectNode> rows = new ArrayList<>();
        int lineNo = 0;
        for (String line : Files.readAllLines(input, StandardCharsets.UTF_8)) {
            lineNo++;
            if (line.isBlank()) continue;
            JsonNode n;
            try {
                n = JSON.readTree(line);
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new IllegalArgumentException(input + ":" + lineNo + ": not a JSON object: " + e.getOriginalMessage());
            }
            if (!n.isObject()) throw new IllegalArgumentException(input + ":" + lineNo + ": not a JSON object");
            if (n.has(outCol)) throw new IllegalArgumentException(input + ":" + lineNo + ": already has a field '" + outCol + "' (--output-col)");
            JsonNode name = n.get(adapterCol);
            if (name != null && !name.isNull() && !name.isTextual()) {
                throw new IllegalArgumentException(input + ":" + lineNo + ": field '" + adapterCol + "' must be a string");
            }
            if (name != null && name.isTextual() && !name.asText().isEmpty() && !name.asText().equals(AdapterSet.BASE) && !adapters.containsKey(name.asText())) {
                throw new IllegalArgumentException(input + ":" + lineNo + ": names adapter '" + name.asText() + "', which is not among --adapters "
                        + adapters.keySet() + " (" + AdapterSet.BASE + ": the base)");
            }
            ((ObjectNode) n).put("_line", lineNo);
            rows.add((ObjectNode) n);
        }
        // rows with a text, in batches of batchRows; a row without one gets null
        List<ObjectNode> live = new ArrayList<>();
        for (ObjectNode r : rows) {
            JsonNode t = r.get(textCol);
            if (t == null || t.isNull()) r.putNull(outCol);
            else if (!t.isTextual()) throw new IllegalArgumentException(input + ":" + r.get("_line").asInt() + ": field '" + textCol + "' must be a string");
            else live.add(r);
        }
        for (int i = 0; i < live.size(); i += batchRows) {
            List<ObjectNode> batch = live.subList(i, Math.min(live.size(), i + batchRows));
            List<String> texts = new ArrayList<>(), names = new ArrayList<>();
            for (ObjectNode r : batch) {
                texts.add(r.get(textCol).asText());
                JsonNode name = r.get(adapterCol);
                names.add(name == null || name.isNull() || name.asText().isEmpty() ? AdapterSet.BASE : name.asText());
            }
            try {
                if (maxNew >= 0) {
                    List<String> got = set.generate(texts, names, maxNew);
                    for (int j = 0; j < batch.size(); j++) batch.get(j).put(outCol, got.get(j));
                } else {
                    double[] got = set.meanLoss(texts, names);
                    for (int j = 0; j < batch.size(); j++) batch.get(j).put(outCol, got[j]);
                }
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(input + ": lines " + batch.get(0).get("_line").asInt() + "-" + batch.get(batch.size() - 1).get("_line").asInt()
                        + ": " + e.getMessage(), e);
            }
        }
        AtomicFiles.writeStream(out, stream -> {
            BufferedWriter w = new BufferedWriter(new java.io.OutputStreamWriter(stream, StandardCharsets.UTF_8));
            for (ObjectNode r : rows) {
                r.remove("_line");
                w.write(JSON.writeValueAsString(r));
                w.newLine();
            }
            w.flush();
        });
        System.out.printf(Locale.ROOT, "%s: %d rows, %d adapters; wrote %s%n", maxNew >= 0 ? "generate" : "score", rows.size(), adapters.size(), out);
        return 0;
    }
}
