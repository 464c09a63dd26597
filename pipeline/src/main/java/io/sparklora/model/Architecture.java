package io.sparklora.model;

import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The decoder-only families the engine builds, chosen by {@code model_type} in a checkpoint's
 * {@code config.json}. All but GPT-2 are variations of the Llama block (RMSNorm, rotary positions,
 * grouped-query attention, SwiGLU MLP, nn.Linear weights stored [out, in]):
 *
 * <ul>
 *   <li>{@code gpt2}: learned positions, LayerNorm, GELU (tanh) MLP, fused {@code c_attn}, tied embeddings,
 *       Conv1D weights stored [in, out].</li>
 *   <li>{@code llama}: the base of the family; {@code rope_scaling} (llama3, linear, dynamic), {@code head_dim}
 *       and {@code attention_bias} as transformers' LlamaConfig defines them.</li>
 *   <li>{@code mistral}: Llama with a sliding attention window (refused when shorter than the sequence).</li>
 *   <li>{@code qwen2}: biases on q, k and v (not on o).</li>
 *   <li>{@code qwen3}: per-head RMSNorm on q and k ({@code q_norm}, {@code k_norm}) before the rotation.</li>
 *   <li>{@code phi3}: fused {@code qkv_proj} ([q | k | v] rows) and {@code gate_up_proj} ([gate | up] rows).</li>
 * </ul>
 */
public enum Architecture {
    GPT2("gpt2", "GPT2LMHeadModel", List.of("c_attn")),
    LLAMA("llama", "LlamaForCausalLM", List.of("q_proj", "v_proj")),
    MISTRAL("mistral", "MistralForCausalLM", List.of("q_proj", "v_proj")),
    QWEN2("qwen2", "Qwen2ForCausalLM", List.of("q_proj", "v_proj")),
    QWEN3("qwen3", "Qwen3ForCausalLM", List.of("q_proj", "v_proj")),
    PHI3("phi3", "Phi3ForCausalLM", List.of("qkv_proj", "o_proj", "gate_up_proj", "down_proj"));

    private final String modelType;
    private final String hfClass;
    private final List<String> defaultTargets;

    Architecture(String modelType, String hfClass, List<String> defaultTargets) {
        this.modelType = modelType;
        this.hfClass = hfClass;
        this.defaultTargets = defaultTargets;
    }

    /** The {@code model_type} value Hugging Face writes in config.json. */
    public String modelType() { return modelType; }

    /** transformers' class for a causal LM of this family, as {@code architectures} names it. */
    public String hfClass() { return hfClass; }

    /** PEFT's default LoRA target modules for this {@code model_type} (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
    public List<String> defaultLoraTargets() { return defaultTargets; }

    /** Phi-3's fused projections: {@code qkv_proj} for q|k|v and {@code gate_up_proj} for gate|up. */
    public boolean fusedProjections() { return this == PHI3; }

    /** Qwen3's RMSNorm over each head of q and k. */
    public boolean qkNorm() { return this == QWEN3; }

    /** The supported {@code model_type}s, comma-separated. */
    public static String supported() {
        return Arrays.stream(values()).map(Architecture::modelType).collect(Collectors.joining(", "));
    }

    public static Architecture fromModelType(String modelType, String where) {
        for (Architecture a : values()) {
            if (a.modelType.equals(modelType)) return a;
        }
        throw new ModelConfigException(where + ": unknown architecture model_type='" + modelType
                + "' (supported: " + supported() + ")");
    }
}
