package io.sparklora.spark.train;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparklora.api.TinyBase;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.buffer.DataType;
import io.sparklora.runner.PipelineConfig;
import io.sparklora.runner.PipelineRunner;
import io.sparklora.spark.SparkSetup;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A run is bit-reproducible for a fixed seed and partitioning, however loaded the machine is: the same pipeline
 * (train with K=1 gradient sync, LoRA-drop with parameter sync, evaluate) runs twice, the second time while other
 * processes keep every core busy, and the adapters must be equal byte for byte and the evaluation figures exactly.
 *
 * <p>Two demo runs once differed (base perplexity 1932.95 and 1930.84) when one of them ran on a busy machine: two
 * local tasks each asked libnd4j's shared thread pool for every core, got however many threads happened to be free,
 * and split their reductions accordingly. Each task now runs on {@code spark.task.cpus} engine threads
 * ({@link io.sparklora.spark.TaskEngine}), so what a task computes no longer depends on what else runs.
 */
class ReproducibleUnderLoadTest {
    static final PrintStream QUIET = new PrintStream(OutputStream.nullOutputStream());

    @Test
    void aRunOnALoadedMachineEqualsARunOnAnIdleOneByteForByte(@TempDir Path tmp) throws Exception {
        // as wide as the demo's base (d 128), so that the engine's ops are big enough to be split over threads
        Path base = tmp.resolve("base");
        HfModelDirectory.save(TransformerLM.randomInit(ModelConfig.gpt2(320, 128, 2, 4, 64), 11), base, DataType.FLOAT,
                TinyBase.tokenizerJson().getParent());
        Path dataset = TinyBase.writeDataset(tmp.resolve("data"), TinyBase.documents(80, 3));
        Path quiet = tmp.resolve("quiet"), loaded = tmp.resolve("loaded");
        JsonNode a = run(base, dataset, quiet);
        JsonNode b;
        List<Process> burners = burnEveryCore();
        try {
            b = run(base, dataset, loaded);
        } finally {
            for (Process p : burners) p.destroyForcibly();
        }
        for (String file : List.of("adapter/adapter_model.safetensors", "lora-drop/adapter/adapter_model.safetensors")) {
            assertArrayEquals(Files.readAllBytes(quiet.resolve(file)), Files.readAllBytes(loaded.resolve(file)),
                    file + " differs between the idle and the loaded run");
        }
        for (String model : List.of("base", "adapted", "merged")) {
            JsonNode x = a.path("eval").path(model), y = b.path("eval").path(model);
            assertTrue(x.path("loss").isNumber(), a.path("eval").toPrettyString());
            assertEquals(x.path("loss").asDouble(), y.path("loss").asDouble(), 0.0, model + " loss");
            assertEquals(x.path("perplexity").asDouble(), y.path("perplexity").asDouble(), 0.0, model + " perplexity");
        }
        assertEquals(a.path("train").path("final_loss").asDouble(), b.path("train").path("final_loss").asDouble(), 0.0);
    }

    private static JsonNode run(Path base, Path dataset, Path out) throws Exception {
        PipelineConfig cfg = PipelineConfig.parse(String.join("\n",
                "name: repro",
                "output: " + out,
                "datasets: {adapt: " + dataset + "}",
                "base: {path: " + base + "}",
                "data: {seq_len: 64, partitions: 4, validation_fraction: 0.2}",
                "adapter: {type: lora, r: 4, targets: [c_attn, c_proj, c_fc]}",
                "train: {rounds: 6, local_steps: 1, sync: gradients, batch_size: 8, lr: 1.0e-2, warmup: 0, checkpoint_every: 0}",
                "lora_drop: {enabled: true, warmup_rounds: 2, rounds: 3, sample_fraction: 0.5}",
                "evaluate: {samples: 0}", ""), "repro.yaml");
        try (JavaSparkContext sc = SparkSetup.local(2)) {
            return new PipelineRunner(sc, cfg, QUIET).run(Set.of());
        }
    }

    /** One busy-looping shell per core: another process, as on a shared machine. */
    private static List<Process> burnEveryCore() throws IOException {
        List<Process> ps = new ArrayList<>();
        for (int i = 0; i < Runtime.getRuntime().availableProcessors(); i++) {
            ps.add(new ProcessBuilder("sh", "-c", "while :; do :; done").redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start());
        }
        return ps;
    }
}
