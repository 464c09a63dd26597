package io.sparklora.model;

import org.nd4j.linalg.api.ndarray.INDArray;

import java.util.List;

/** The position-wise MLP of a block: GELU MLP (GPT-2) or SwiGLU (Llama). Shapes: [N, C] → [N, C]. */
public interface FeedForward {

    /** What forward saved; implementations add their own fields. */
    interface Cache {
        INDArray out();

        /** Frees what forward saved. */
        void release();

        /** The same cache with what only backward reads held in bfloat16 ({@link SavedActivations}). */
        default Cache halfPrecision() { return this; }
    }

    Cache forward(INDArray x, ForwardContext ctx);

    INDArray backward(Cache c, INDArray dy);

    List<Linear> linears();

    /** Whether backward needs the block's input to this MLP (some first-layer projection trains). */
    boolean needsInput();
}
