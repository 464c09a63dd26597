package io.sparklora.adapters;

import io.sparklora.gradcheck.GradientChecker;
import io.sparklora.model.Architecture;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * PEFT's trainable tokens ({@code trainable_token_indices}): a few embedding rows train beside the adapter,
 * read by the embedding and by a tied head.
 */
class TrainableTokensTest {
    private static final int[] TOKENS = {3, 7, 9};

    /** Llama with its head tied to the embedding (as Llama 3.2 1B and Qwen 2 small models are). */
    private static ModelConfig tiedLlama() {
        return TinyModels.llama().withTiedEmbeddings(true);
    }

    private static ModelConfig config(String kind) {
        return switch (kind) {
            case "gpt2" -> TinyModels.gpt2();
            case "llama" -> TinyModels.llama();
            default -> tiedLlama();
        };
    }

    private static AttachedAdapter attach(TransformerLM model) {
        String target = model.config().architecture() == Architecture.GPT2 ? "c_attn" : "q_proj";
        AdapterConfig c = AdapterConfig.lora(2, 4, List.of(target)).withTrainableTokens(TOKENS);
        return AttachedAdapter.attach(model, "default", c, 5);
    }

    /** Moves the rows away from the frozen ones (as training would), so the replacement is visible. */
    private static void perturb(AttachedAdapter a) {
        INDArray rows = a.tokenRows().rows().value();
        rows.addi(Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(11), rows.shape()).castTo(rows.dataType()).muli(0.5));
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama", "tied-llama"})
    void rowsGradientMatchesFiniteDifferences(String kind) {
        ModelConfig cfg = config(kind);
        TransformerLM model = TinyModels.model(cfg, 1);
        AttachedAdapter a = attach(model);
        perturb(a);
        // every replaced token appears in the inputs, and as targets
        TokenBatch batch = TokenBatch.of(new int[][]{{3, 1, 7, 9, 2}, {9, 9, 4, 3, 7}}, new int[][]{{7, 9, 2, 3, 1}, {3, 7, 9, 7, TokenBatch.IGNORE}});
        a.trainableParameters().forEach(p -> p.zeroGrad());
        model.forwardBackward(batch, ForwardContext.inference(), 1.0);
        INDArray rows = a.tokenRows().rows().value();
        GradientChecker.Result r = GradientChecker.check("rows", rows, a.tokenRows().rows().grad().dup(),
                () -> model.loss(batch).meanLoss(), 1000, 1e-6, 3);
        assertTrue(r.maxRelativeError() < 1e-5, r.toString());
        assertEquals(TOKENS.length * cfg.hiddenSize(), r.checked());
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama", "tied-llama"})
    void attachingChangesNothingAndMergedEqualsAdaptedWithTheFrozenEmbeddingUntouched(String kind) {
        ModelConfig cfg = config(kind);
        TransformerLM model = TinyModels.model(cfg, 2);
        model.tokenEmbedding().markShared();
        INDArray sharedArray = model.tokenEmbedding().value();
        INDArray frozen = sharedArray.dup();
        TokenBatch batch = TinyModels.batch(cfg, 2, 6, 4);
        INDArray before = model.logits(batch).dup();
        AttachedAdapter a = attach(model);
        assertEquals(before, model.logits(batch), "the rows start at the frozen rows' values");
        perturb(a);
        INDArray adapted = model.logits(batch).dup();
        assertNotEquals(before, adapted);
        a.merge();
        INDArray merged = model.logits(batch).dup();
        assertTrue(adapted.equalsWithEps(merged, 1e-9), "merged equals adapted");
        // the merge wrote a private copy: the shared embedding array is bit-for-bit what it was
        assertEquals(frozen, sharedArray, "the shared embedding array is bit-for-bit unchanged");
        assertNotSame(sharedArray, model.tokenEmbedding().value(), "the merge wrote a private copy");
        a.detach();
        assertEquals(before, model.logits(batch), "detached: the frozen model again");
        assertEquals(frozen, model.tokenEmbedding().value());
        assertEquals(frozen, sharedArray);
    }

    @Test
    void savedInPeftLayoutAndLoadedBack(@TempDir Path dir) throws Exception {
        ModelConfig cfg = TinyModels.gpt2();
        TransformerLM model = TinyModels.model(cfg, 3);
        AttachedAdapter a = attach(model);
        perturb(a);
        Map<String, INDArray> t = PeftAdapterFormat.tensors(a);
        assertTrue(t.containsKey("base_model.model.transformer.wte.token_adapter.trainable_tokens_delta"), t.keySet().toString());
        PeftAdapterFormat.save(a, dir.resolve("adapter"), "tiny");
        String json = Files.readString(dir.resolve("adapter/adapter_config.json"));
        assertTrue(json.replaceAll("\\s", "").contains("\"trainable_token_indices\":[3,7,9]"), json);

        TransformerLM other = TinyModels.model(cfg, 3);
        AttachedAdapter b = PeftAdapterFormat.load(other, dir.resolve("adapter"), "default");
        assertArrayEquals(TOKENS, b.tokenRows().indices());
        TokenBatch batch = TinyModels.batch(cfg, 2, 6, 5);
        assertTrue(model.logits(batch).equalsWithEps(other.logits(batch), 1e-6));

        // the count from the configs alone includes the rows: n·C
        assertEquals(a.trainableParameterCount(), ParameterCounter.report(cfg, a.config()).trainable());
        assertEquals(LoraCount.of(cfg) + TOKENS.length * cfg.hiddenSize(), a.trainableParameterCount());
    }

    @Test
    void badIndicesAreClearErrors() {
        TransformerLM model = TinyModels.model(TinyModels.gpt2(), 1);
        AdapterConfig c = AdapterConfig.lora(2, 4, List.of("c_attn"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AttachedAdapter.attach(model, "x", c.withOption(AdapterConfig.TRAINABLE_TOKENS, "3,99"), 1));
        assertTrue(e.getMessage().contains("99") && e.getMessage().contains("vocabulary"), e.getMessage());
        assertNull(model.linears().get("transformer.h.0.attn.c_attn").adapter("x"), "a refused config leaves the model untouched");
        e = assertThrows(IllegalArgumentException.class, () -> c.withOption(AdapterConfig.TRAINABLE_TOKENS, "3,3").trainableTokenIndices());
        assertTrue(e.getMessage().contains("twice"), e.getMessage());
        assertArrayEquals(new int[]{12, 40}, AdapterSpecs.parse("type=lora,r=2,trainable_token_indices=12+40", Architecture.GPT2).trainableTokenIndices());
    }

    /** LoRA's own count on the tiny GPT-2's c_attn layers: r·(in + out) each. */
    private static final class LoraCount {
        static long of(ModelConfig cfg) {
            return (long) cfg.numLayers() * 2 * (cfg.hiddenSize() + 3L * cfg.hiddenSize());
        }
    }
}
