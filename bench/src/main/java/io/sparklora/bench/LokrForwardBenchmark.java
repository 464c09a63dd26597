package io.sparklora.bench;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.lokr.LokrAdapter;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * LoKr's factored forward + backward against the explicit one (build s·(w1 ⊗ w2) [out, in], then x·ΔWᵀ, dy·ΔW
 * and the weight gradient dyᵀ·x the factors' gradients are read from) on one 768 → 768 layer, r = 8, for N tokens. Not a test: run by hand, figures in docs/VARIANTS.md.
 *
 * <p>Usage: java -cp ... io.sparklora.bench.LokrForwardBenchmark [N=1024] [reps=20]
 */
public final class LokrForwardBenchmark {
    public static void main(String[] args) {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 1024, reps = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        TransformerLM m = TransformerLM.randomInit(ModelConfig.gpt2(11, 768, 1, 12, 8), 1);
        AttachedAdapter a = AttachedAdapter.attach(m, "default", AdapterConfig.of("lokr", 8, 16, List.of("attn.c_proj")), 2);
        for (Parameter p : a.trainableParameters()) p.value().assign(Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(3), p.value().shape()).muli(0.1));
        LokrAdapter layer = (LokrAdapter) a.layers().get("transformer.h.0.attn.c_proj");
        INDArray x = Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(4), new long[]{n, 768});
        INDArray dy = Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(5), new long[]{n, 768});
        double[] factored = new double[reps], explicit = new double[reps];
        double maxDiff = 0;
        for (int i = 0; i < reps + 3; i++) {
            long t0 = System.nanoTime();
            var act = layer.forward(x, null, ForwardContext.inference());
            INDArray dx = layer.backward(act, dy);
            long t1 = System.nanoTime();
            INDArray w = layer.deltaLogical();                        // [out, in]
            INDArray y = x.mmul(w.transpose());
            INDArray dx2 = dy.mmul(w);
            INDArray dW = dy.transpose().mmul(x);                     // what the factor gradients are read from
            long t2 = System.nanoTime();
            if (i >= 3) {
                factored[i - 3] = (t1 - t0) / 1e6;
                explicit[i - 3] = (t2 - t1) / 1e6;
            }
            maxDiff = Math.max(maxDiff, Math.max(act.delta().sub(y).amaxNumber().doubleValue(), dx.sub(dx2).amaxNumber().doubleValue()));
            act.release();
        }
        Arrays.sort(factored);
        Arrays.sort(explicit);
        int[] s = layer.split();
        System.out.printf(Locale.ROOT, "LoKr 768 -> 768, r = 8, split out %d x %d, in %d x %d, N = %d tokens%n", s[0], s[1], s[2], s[3], n);
        System.out.printf(Locale.ROOT, "factored forward+backward: median %.2f ms; explicit (build dW, x.dWT, dy.dW, dyT.x): median %.2f ms; max |diff| %.2e%n",
                factored[reps / 2], explicit[reps / 2], maxDiff);
        System.out.printf(Locale.ROOT, "explicit dW: %d bytes; factored keeps Z = X.w2T: %d bytes (N.c.b floats); factors: %d parameters%n",
                768L * 768 * 4, (long) n * s[2] * s[1] * 4, a.trainableParameterCount());
    }
}
