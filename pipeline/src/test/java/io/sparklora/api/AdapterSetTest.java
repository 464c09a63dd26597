package io.sparklora.api;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.checkpoint.HfModelDirectory;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import io.sparklora.tokenize.TextTokenizer;
import io.sparklora.train.Generator;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Serving saved adapters of two methods (LoRA and DoRA) on one base in mixed batches: each row's text and loss equal
 * that adapter's alone, the base row equals the base; adapters that cannot be mixed or do not fit are refused.
 */
class AdapterSetTest {
    /** A saved adapter of {@code config} with random (non-zero) tensors, trained "on" {@code base}. */
    static Path adapter(Path base, Path dir, AdapterConfig config, long seed) {
        TransformerLM m = HfModelDirectory.load(base);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", config, seed);
        var rng = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        for (Parameter p : a.trainableParameters()) p.set(p.value().add(Nd4j.randn(rng, p.value().shape()).castTo(p.value().dataType()).muli(0.3)));
        PeftAdapterFormat.save(a, dir, base.toString());
        return dir;
    }

    @Test
    void mixedRowsEqualEachAdapterAloneAndBadAdaptersAreRefused(@TempDir Path tmp) throws Exception {
        Path base = TinyBase.write(tmp.resolve("base"), 7);
        Path lora = adapter(base, tmp.resolve("lora"), AdapterConfig.lora(4, 8, List.of("c_attn", "c_fc")), 1);
        Path dora = adapter(base, tmp.resolve("dora"), AdapterConfig.of("dora", 4, 8, List.of("c_attn")), 2);
        Configuration conf = new Configuration();
        AdapterSet set = AdapterSet.on(conf, base.toString()).add("lora", lora.toString()).add("dora", dora.toString());
        assertEquals(List.of("lora", "dora"), set.names());

        List<String> prompts = List.of("the river runs to", "a stone falls", "our ship sails past the", "the light");
        List<String> names = List.of("dora", "lora", AdapterSet.BASE, "lora");
        List<String> mixed = set.generate(prompts, names, 12);
        double[] losses = set.meanLoss(List.of("the river runs to the sea.", "the north wind blows across seven gates.",
                "a stone falls on the hill."), List.of("lora", AdapterSet.BASE, "dora"));

        TextTokenizer tok = TextTokenizer.fromModelDir(base);
        for (int i = 0; i < prompts.size(); i++) {
            TransformerLM alone = HfModelDirectory.load(base);
            if (!names.get(i).equals(AdapterSet.BASE)) PeftAdapterFormat.load(alone, names.get(i).equals("lora") ? lora : dora, "default");
            String expected = tok.decode(Generator.greedy(alone, tok.encode(prompts.get(i)), 12, tok.eosTokenId()));
            assertEquals(expected, mixed.get(i), "row " + i + " (" + names.get(i) + ")");
        }
        assertNotEquals(mixed.get(1), set.generate(List.of(prompts.get(1)), List.of(AdapterSet.BASE), 12).get(0),
                "the adapter must change the text for the comparison to mean anything");
        String[] texts = {"the river runs to the sea.", "the north wind blows across seven gates.", "a stone falls on the hill."};
        String[] which = {"lora", AdapterSet.BASE, "dora"};
        for (int i = 0; i < texts.length; i++) {
            assertEquals(set.meanLoss(List.of(texts[i]), List.of(which[i]))[0], losses[i], 1e-5, "loss of text " + i + " alone vs mixed");
        }

        var unknown = assertThrows(IllegalArgumentException.class, () -> set.generate(List.of("a"), List.of("vera"), 3));
        assertTrue(unknown.getMessage().contains("row 0 names adapter 'vera'"), unknown.getMessage());
        Path biased = adapter(base, tmp.resolve("biased"), AdapterConfig.lora(4, 8, List.of("c_attn")).withBias("lora_only"), 3);
        var bias = assertThrows(IllegalArgumentException.class, () -> set.add("biased", biased.toString()));
        assertTrue(bias.getMessage().contains("biases") && bias.getMessage().contains("every row"), bias.getMessage());
        assertEquals(List.of("lora", "dora"), set.names(), "a refused adapter leaves the set as it was");
        assertEquals(mixed, set.generate(prompts, names, 12), "and the model too");
        Path otherBase = TinyBase.write(tmp.resolve("base2"), 8);
        Path foreign = adapter(otherBase, tmp.resolve("foreign"), AdapterConfig.lora(4, 8, List.of("c_attn")), 4);
        var wrongBase = assertThrows(IllegalArgumentException.class, () -> set.add("foreign", foreign.toString()));
        assertTrue(wrongBase.getMessage().contains("weights differ"), wrongBase.getMessage());
    }
}
