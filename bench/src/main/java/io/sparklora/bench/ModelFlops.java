package io.sparklora.bench;

import io.sparklora.model.Architecture;
import io.sparklora.model.ModelConfig;

import java.util.List;

/**
 * Model FLOPs of one training step, counted explicitly from the shapes (a multiply-add is 2 FLOPs;
 * only matrix products are counted: norms, softmax, GELU, the loss, embedding gathers and the
 * optimizer are left out, as in the usual MFU convention).
 *
 * <p>Per token, with L layers, width d, MLP width F, vocabulary V, sequence length T:
 * <pre>
 *   dense  = 2·( L·(d·3d + d·d + d·F + F·d)  +  V·d )      every weight matmul once, tied lm head included
 *   attn   = L · 2·2·T·d                                    QKᵀ and P·V over the full T×T square
 *                                                           (the engine computes the masked half too;
 *                                                           a causal-only count would halve this term)
 *   lora   = Σ over adapted layers of 2·r·(in + out)       x·Aᵀ then h·Bᵀ
 *
 *   full fine-tuning : 3·dense + 3·attn                     backward = 2× forward (dX and dW)
 *   LoRA             : 2·dense + 3·attn + 3·lora            backward: dX only through the frozen weights
 *                                                           (1× dense), attention has no weights so its
 *                                                           backward is still 2× (dQ,dK,dV,dP), adapters 2×
 * </pre>
 * For Llama shapes the dense term uses q,k,v,o and the three SwiGLU projections instead.
 */
public final class ModelFlops {
    private ModelFlops() {}

    /** Adapted layer shape: in and out features, how many of them in the model. */
    public record Adapted(long in, long out, long count) {}

    /** 2 × (weight-matrix elements touched per token), lm head included. */
    public static double denseForwardPerToken(ModelConfig c) {
        long d = c.hiddenSize(), f = c.intermediateSize(), v = c.vocabSize();
        long perLayer;
        if (c.architecture() == Architecture.GPT2) {
            perLayer = d * 3 * d + d * d + d * f + f * d;
        } else {
            long hd = (long) c.numHeads() * c.headDim(), kvd = (long) c.numKvHeads() * c.headDim();
            perLayer = d * hd + 2 * d * kvd + hd * d + 3 * d * f;
        }
        return 2.0 * (c.numLayers() * perLayer + v * d);
    }

    /** QKᵀ and P·V, full T×T square: L · 4·T·d per token. */
    public static double attentionForwardPerToken(ModelConfig c, int seq) {
        return (double) c.numLayers() * 4.0 * seq * c.numHeads() * c.headDim();
    }

    public static double loraForwardPerToken(int r, List<Adapted> adapted) {
        double s = 0;
        for (Adapted a : adapted) s += 2.0 * r * (a.in() + a.out()) * a.count();
        return s;
    }

    /** Training FLOPs per token: full fine-tuning when {@code adapted} is null, else LoRA. */
    public static double trainPerToken(ModelConfig c, int seq, int r, List<Adapted> adapted) {
        double dense = denseForwardPerToken(c), attn = attentionForwardPerToken(c, seq);
        if (adapted == null) return 3 * dense + 3 * attn;
        return 2 * dense + 3 * attn + 3 * loraForwardPerToken(r, adapted);
    }
}
