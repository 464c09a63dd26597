package io.sparklora.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.ParameterCounter;
import io.sparklora.adapters.TargetMatcher;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The model families as their published config.json files describe them: exact parameter counts from the
 * config alone (checked against the counts the model cards give), PEFT's default targets, and clear errors
 * for what the engine does not build.
 */
class ModelFamiliesTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** meta-llama/Llama-3.2-1B's config.json. */
    static final String LLAMA_3_2_1B = """
            {"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
             "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
             "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
             "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
             "pretraining_tp": 1, "rms_norm_eps": 1e-05,
             "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                              "original_max_position_embeddings": 8192, "rope_type": "llama3"},
             "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
             "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256}""";

    /** Qwen/Qwen2.5-0.5B's config.json. */
    static final String QWEN_2_5_0_5B = """
            {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
             "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
             "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
             "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
             "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
             "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}""";

    /** Qwen/Qwen3-0.6B's config.json (head_dim 128 while hidden/heads is 64). */
    static final String QWEN_3_0_6B = """
            {"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
             "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02,
             "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
             "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
             "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": true,
             "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}""";

    /** microsoft/Phi-3-mini-4k-instruct's config.json (fused qkv_proj and gate_up_proj). */
    static final String PHI_3_MINI_4K = """
            {"architectures": ["Phi3ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0,
             "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02,
             "intermediate_size": 8192, "max_position_embeddings": 4096, "model_type": "phi3", "num_attention_heads": 32,
             "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
             "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
             "sliding_window": 2047, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
             "vocab_size": 32064}""";

    /** mistralai/Mistral-7B-v0.1's config.json. */
    static final String MISTRAL_7B = """
            {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
             "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
             "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
             "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
             "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 32000}""";

    static ModelConfig config(String json) throws Exception {
        return ModelConfig.fromJson(JSON.readTree(json), "config.json");
    }

    @Test
    void llama32OneBillionCountsExactlyWithTiedEmbeddings() throws Exception {
        ModelConfig c = config(LLAMA_3_2_1B);
        assertEquals(Architecture.LLAMA, c.architecture());
        assertTrue(c.tieWordEmbeddings());
        assertEquals("llama3", c.ropeScaling().type());
        assertEquals(1_235_814_400L, TransformerLM.parameterCount(c));
        AdapterConfig lora = AdapterConfig.lora(8, 16, List.of("q_proj", "v_proj"));
        assertEquals(851_968L, ParameterCounter.report(c, lora).trainable());
        assertEquals(List.of("q_proj", "v_proj"), TargetMatcher.defaultTargets(c.architecture()));
    }

    @Test
    void qwenCountsExactly() throws Exception {
        ModelConfig q2 = config(QWEN_2_5_0_5B);
        assertTrue(q2.qkvBias());
        assertFalse(q2.outputBias());
        assertEquals(0, q2.slidingWindow(), "use_sliding_window false: full attention");
        assertEquals(494_032_768L, TransformerLM.parameterCount(q2));
        ModelConfig q3 = config(QWEN_3_0_6B);
        assertEquals(128, q3.headDim());
        assertEquals(596_049_920L, TransformerLM.parameterCount(q3));
        assertTrue(TransformerLM.expectedShapes(q3).containsKey("model.layers.0.self_attn.q_norm.weight"));
        assertEquals(2048L, TransformerLM.expectedShapes(q3).get("model.layers.0.self_attn.q_proj.weight")[0]);
    }

    @Test
    void phi3CountsExactlyAndTargetsItsFusedProjections() throws Exception {
        ModelConfig c = config(PHI_3_MINI_4K);
        assertEquals(3_821_079_552L, TransformerLM.parameterCount(c));
        assertEquals(2047, c.slidingWindow());
        List<String> targets = TargetMatcher.defaultTargets(c.architecture());
        assertEquals(List.of("qkv_proj", "o_proj", "gate_up_proj", "down_proj"), targets);
        // LoRA r = 8 on every fused projection: r·(in + out) per layer
        long perLayer = 8L * (3072 + 3 * 3072) + 8L * (3072 + 3072) + 8L * (3072 + 2 * 8192) + 8L * (8192 + 3072);
        assertEquals(32 * perLayer, ParameterCounter.report(c, AdapterConfig.lora(8, 16, targets)).trainable());
    }

    @Test
    void mistralCountsExactlyAndRefusesSequencesPastItsWindow() throws Exception {
        ModelConfig c = config(MISTRAL_7B);
        assertEquals(7_241_732_096L, TransformerLM.parameterCount(c));
        c.checkSequenceLength(4096);
        ModelConfigException e = assertThrows(ModelConfigException.class, () -> c.checkSequenceLength(4097));
        assertTrue(e.getMessage().contains("sliding_window 4096") && e.getMessage().contains("4097"), e.getMessage());
        // the model itself refuses a batch longer than the window
        TransformerLM tiny = TinyModels.model(TinyModels.llama().as(Architecture.MISTRAL).withSlidingWindow(4), 1);
        tiny.logits(TinyModels.batch(tiny.config(), 1, 4, 1));
        assertThrows(ModelConfigException.class, () -> tiny.logits(TinyModels.batch(tiny.config(), 1, 5, 1)));
    }

    @Test
    void unknownModelTypeListsTheSupportedOnes() {
        ModelConfigException e = assertThrows(ModelConfigException.class,
                () -> config("{\"model_type\": \"gemma2\", \"hidden_size\": 8}"));
        assertTrue(e.getMessage().contains("gemma2") && e.getMessage().contains(
                "gpt2, llama, mistral, qwen2, qwen3, phi3"), e.getMessage());
    }

    @Test
    void unsupportedRopeScalingIsAClearError() throws Exception {
        JsonNode yarn = JSON.readTree(LLAMA_3_2_1B.replace("\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\""));
        ModelConfigException e = assertThrows(ModelConfigException.class, () -> ModelConfig.fromJson(yarn, "x/config.json"));
        assertTrue(e.getMessage().contains("x/config.json") && e.getMessage().contains("yarn")
                && e.getMessage().contains("llama3"), e.getMessage());
    }

    /** Llama 3's rule at the published setting: high frequencies kept, low ones divided by 32, the band between smoothed. */
    @Test
    void llama3InverseFrequenciesFollowTheWavelengthRule() throws Exception {
        ModelConfig c = config(LLAMA_3_2_1B);
        float[] plain = RopeScaling.NONE.inverseFrequencies(64, 500000.0, 16);
        float[] scaled = c.ropeScaling().inverseFrequencies(64, 500000.0, 16);
        int kept = 0, divided = 0, smoothed = 0;
        for (int i = 0; i < plain.length; i++) {
            double wavelen = 2 * Math.PI / plain[i];
            if (wavelen < 8192 / 4.0) {
                assertEquals(plain[i], scaled[i]);
                kept++;
            } else if (wavelen > 8192 / 1.0) {
                assertEquals(plain[i] / 32f, scaled[i]);
                divided++;
            } else {
                assertTrue(scaled[i] < plain[i] && scaled[i] > plain[i] / 32f);
                smoothed++;
            }
        }
        assertTrue(kept > 0 && divided > 0 && smoothed > 0, kept + " kept, " + divided + " divided, " + smoothed + " smoothed");
    }

    @Test
    void configKeysTheEngineDoesNotModelSurviveToJson() throws Exception {
        ModelConfig c = config(LLAMA_3_2_1B);
        JsonNode out = c.toJson();
        assertEquals(JSON.readTree(LLAMA_3_2_1B), out);
    }
}
