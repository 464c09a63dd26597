package io.sparklora.model;

/**
 * The decoder-only families the engine builds, chosen from a checkpoint's {@code config.json}.
 *
 * <ul>
 *   <li>GPT-2: learned positions, LayerNorm, GELU (tanh) MLP, fused {@code c_attn}, tied embeddings,
 *       Conv1D weights stored [in, out].</li>
 *   <li>Llama: RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention, untied head,
 *       nn.Linear weights stored [out, in].</li>
 * </ul>
 */
public enum Architecture {
    GPT2("gpt2"),
    LLAMA("llama");

    private final String modelType;

    Architecture(String modelType) { this.modelType = modelType; }

    /** The {@code model_type} value Hugging Face writes in config.json. */
    public String modelType() { return modelType; }

    public static Architecture fromModelType(String modelType, String where) {
        for (Architecture a : values()) {
            if (a.modelType.equals(modelType)) return a;
        }
        // Mistral and other Llama-shaped models differ in details (sliding windows, biases) we do not model.
        throw new ModelConfigException(where + ": unknown architecture model_type='" + modelType
                + "' (supported: gpt2, llama)");
    }
}
