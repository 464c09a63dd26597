package io.sparklora.api;

import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.buffer.DataType;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Test fixtures for the API and spark.ml tests: a tiny random GPT-2 (vocabulary 320, d 32, 2 layers)
 * saved as a Hugging Face directory with the test tokenizer (tokenizers/tiny-bpe) beside it, and a
 * patterned corpus that an adapter can learn in a few steps.
 */
public final class TinyBase {
    public static final ModelConfig CONFIG = ModelConfig.gpt2(320, 32, 2, 2, 64);
    private static final String[] SUBJECTS = {"the river", "a stone", "the light", "our ship", "the north wind"};
    private static final String[] VERBS = {"runs to", "falls on", "shines over", "sails past", "blows across"};
    private static final String[] OBJECTS = {"the sea", "the hill", "the town", "the green field", "seven gates"};

    private TinyBase() {}

    /** The test tokenizer's tokenizer.json. */
    public static Path tokenizerJson() {
        try {
            return Path.of(TinyBase.class.getResource("/tokenizers/tiny-bpe/tokenizer.json").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Writes the base model directory (config.json, model.safetensors, tokenizer.json) to {@code dir}. */
    public static Path write(Path dir, long seed) {
        HfModelDirectory.save(TransformerLM.randomInit(CONFIG, seed), dir, DataType.FLOAT, tokenizerJson().getParent());
        return dir;
    }

    /** {@code n} short documents of the pattern "subject verb object. subject verb object." (seeded). */
    public static List<String> documents(int n, long seed) {
        Random r = new Random(seed);
        List<String> docs = new ArrayList<>();
        for (int d = 0; d < n; d++) {
            StringBuilder sb = new StringBuilder();
            for (int s = 0; s < 3; s++) {
                int i = r.nextInt(SUBJECTS.length);
                sb.append(SUBJECTS[i]).append(' ').append(VERBS[i]).append(' ').append(OBJECTS[r.nextInt(OBJECTS.length)]).append(". ");
            }
            docs.add(sb.toString().strip());
        }
        return docs;
    }

    /** A plain-text dataset (documents separated by blank lines) and its manifest; returns the manifest. */
    public static Path writeDataset(Path dir, List<String> docs) {
        try {
            Files.createDirectories(dir);
            Files.writeString(dir.resolve("corpus.txt"), String.join("\n\n", docs) + "\n");
            Path manifest = dir.resolve("dataset.yaml");
            Files.writeString(manifest, "name: patterns\nsources: [{name: patterns, uri: corpus.txt, format: text}]\n");
            return manifest;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
