package io.sparklora.adapters;

import io.sparklora.model.Linear;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Any trained adapter as a plain LoRA of rank R, which serving systems (vLLM, LoRAX, llama.cpp's converter) load.
 *
 * <p>Per adapted layer: ΔW = W' − W0, the change the method's merge makes (additive or not: DoRA's rescaling is
 * included), in the logical [out, in] layout; its SVD U·Σ·Vᵀ (in float64) truncated to R gives B = U_R·Σ_R
 * [out, R] and A = V_Rᵀ [R, in], saved as a LoRA with alpha = R (scale 1). The relative error
 * ‖ΔW − ΔW_R‖_F / ‖ΔW‖_F = √(Σ_{i>R} σ_i²) / √(Σ σ_i²) is reported per layer; it is 0 (to rounding) wherever ΔW
 * has rank ≤ R (a LoRA of rank ≤ R, a LoHa of rank r with r² ≤ R, Delta-LoRA at 2r). Trained biases and trainable
 * token rows are carried over as they are. A method trained for several ranks (DyLoRA) is first put at rank R
 * ({@link AdapterMethod#useRank}), so its export is its rank-R truncation, exactly. A merge that changes an adapted layer's bias (GLoRA's b') goes out as that
 * layer's bias under PEFT's {@code bias: lora_only}; a layer without a bias cannot get one in a plain LoRA, which is an
 * error naming it.
 */
public final class LoraExport {
    private LoraExport() {}

    /** One layer's truncation: its rank-R relative error and ΔW's numerical rank. */
    public record LayerError(String module, double relativeError, int numericalRank) {}

    /** The LoRA, attached to the model the source was on (the source detached), and every layer's error. */
    public record Result(AttachedAdapter lora, List<LayerError> errors) {
        public double maxRelativeError() { return errors.stream().mapToDouble(LayerError::relativeError).max().orElse(0); }
    }

    /**
     * Converts {@code source} (attached to its model) into a LoRA of rank {@code rank} on the same modules. The
     * source is detached; the returned LoRA is attached under the source's name.
     */
    public static Result toLora(AttachedAdapter source, int rank) {
        if (rank <= 0) throw new IllegalArgumentException("export --to lora: rank must be positive, got " + rank);
        TransformerLM model = source.model();
        List<String> modules = new ArrayList<>(source.layers().keySet());
        for (String m : modules) {
            Linear l = model.linears().get(m);
            if (rank > Math.min(l.inFeatures(), l.outFeatures())) {
                throw new IllegalArgumentException("export --to lora: rank " + rank + " exceeds " + m + "'s dimensions ("
                        + l.inFeatures() + " in, " + l.outFeatures() + " out)");
            }
        }
        source.method().useRank(source, rank);     // DyLoRA: the rank-R truncation, which is a LoRA of rank R exactly
        Map<String, INDArray> before = new LinkedHashMap<>();
        for (String m : modules) before.put(m, model.linears().get(m).baseWeight().dense().dup());
        Map<String, INDArray> biasBefore = new LinkedHashMap<>();
        for (String m : modules) {
            Parameter b = model.linears().get(m).bias();
            if (b != null) biasBefore.put(m, b.value().dup());
        }
        source.merge();
        Map<String, INDArray> delta = new LinkedHashMap<>();
        Map<String, INDArray> mergedBiases = new LinkedHashMap<>();      // b' of layers whose merge changes the bias (GLoRA)
        String biasFreeChanged = null;
        for (String m : modules) {
            Linear l = model.linears().get(m);
            // dup: castTo returns the array itself when it is already float64, and the layer weight must not change
            INDArray d = l.baseWeight().dense().castTo(DataType.DOUBLE).dup().subi(before.get(m).castTo(DataType.DOUBLE));
            delta.put(m, Adapter.inLayerLayout(l, d));                        // logical [out, in]
            if (l.bias() == null) continue;
            INDArray b0 = biasBefore.get(m);
            boolean changed = b0 == null ? l.bias().value().amaxNumber().doubleValue() > 0 : !l.bias().value().equals(b0);
            if (!changed) continue;
            if (b0 == null) { if (biasFreeChanged == null) biasFreeChanged = m; }
            else mergedBiases.put(l.bias().name(), l.bias().value().dup());
        }
        source.unmerge();
        if (biasFreeChanged != null) {
            throw new IllegalArgumentException("export --to lora: the " + source.config().method() + " adapter gives " + biasFreeChanged
                    + " a bias it does not have, which a plain LoRA cannot carry; merge it instead (spark-lora merge), or train it"
                    + " without bias terms on bias-free layers (GLoRA: config_C none and config_D_E none)");
        }
        Map<String, INDArray> biases = new LinkedHashMap<>();
        for (Parameter b : source.trainableBiases()) biases.put(b.name(), b.value().dup());
        biases.putAll(mergedBiases);         // the merged bias b' goes out as PEFT's bias="lora_only" tensors
        INDArray tokenRows = source.tokenRows() == null ? null : source.tokenRows().rows().value().dup();
        AdapterConfig sc = source.config();
        String name = source.name();
        source.detach();

        String biasMode = mergedBiases.isEmpty() || !sc.bias().equals("none") ? sc.bias() : "lora_only";
        AdapterConfig lc = AdapterConfig.lora(rank, rank, modules).withBias(biasMode);
        if (sc.trainableTokenIndices().length > 0) lc = lc.withTrainableTokens(sc.trainableTokenIndices());
        AttachedAdapter lora = AttachedAdapter.attach(model, name, lc, 0);
        List<LayerError> errors = new ArrayList<>();
        for (String m : modules) {
            INDArray[] ab = truncate(delta.get(m), rank);
            DataType dt = model.linears().get(m).baseWeight().dataType();
            lora.layers().get(m).loadStateDict(Map.of("lora_A.weight", ab[0].castTo(dt), "lora_B.weight", ab[1].castTo(dt)), "export of " + m);
            errors.add(new LayerError(m, ab[2].getDouble(0), (int) ab[2].getDouble(1)));
        }
        for (Parameter b : lora.trainableBiases()) {
            INDArray v = biases.get(b.name());
            if (v != null) b.value().assign(v);
        }
        if (tokenRows != null && lora.tokenRows() != null) lora.tokenRows().rows().value().assign(tokenRows);
        return new Result(lora, errors);
    }

    /** {A [R, in], B [out, R], {relative error, numerical rank}} of the rank-R truncated SVD of d [out, in] (float64). */
    static INDArray[] truncate(INDArray d, int rank) {
        int out = (int) d.rows(), in = (int) d.columns(), k = Math.min(out, in);
        INDArray s = Nd4j.create(DataType.DOUBLE, k);
        INDArray u = Nd4j.create(DataType.DOUBLE, new long[]{out, out}, 'f');
        INDArray vt = Nd4j.create(DataType.DOUBLE, new long[]{in, in}, 'f');
        Nd4j.getBlasWrapper().lapack().gesvd(d.dup('f'), s, u, vt);
        double total = 0, tail = 0;
        int numerical = 0;
        double[] sv = s.toDoubleVector();
        for (int i = 0; i < k; i++) {
            total += sv[i] * sv[i];
            if (i >= rank) tail += sv[i] * sv[i];
            if (sv[i] > 1e-10 * Math.max(sv[0], Double.MIN_VALUE)) numerical++;
        }
        int r = Math.min(rank, k);
        INDArray b = u.get(NDArrayIndex.all(), NDArrayIndex.interval(0, r)).dup('c')
                .mulRowVector(s.get(NDArrayIndex.interval(0, r)));                                  // [out, R]
        INDArray a = vt.get(NDArrayIndex.interval(0, r), NDArrayIndex.all()).dup('c');              // [R, in]
        double err = total == 0 ? 0 : Math.sqrt(tail / total);
        return new INDArray[]{a, b, Nd4j.createFromArray(err, numerical)};
    }
}
