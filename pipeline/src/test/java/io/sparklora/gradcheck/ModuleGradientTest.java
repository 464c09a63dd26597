package io.sparklora.gradcheck;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.lora.LoraAdapter;
import io.sparklora.model.*;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Finite-difference checks (float64) of every module's backward, and of the whole model w.r.t. adapter
 * parameters, base parameters and the input embeddings. A loss L = Σ y ⊙ R with a fixed random R makes
 * dL/dy = R for single modules.
 */
class ModuleGradientTest {
    private static final double EPS = 1e-6;
    private static final double TOL = 1e-5;

    private static INDArray randn(long seed, long... shape) {
        return Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(seed), shape).castTo(DataType.DOUBLE);
    }

    private static Parameter param(String name, INDArray v) { return new Parameter(name, v, true, "base"); }

    /** Checks input and parameter gradients of y = f(x) under L = Σ y⊙R. */
    private static void checkModule(String what, INDArray x, Function<INDArray, INDArray> forward,
                                    Function<INDArray, INDArray> backwardFromFreshForward, List<Parameter> params) {
        INDArray y0 = forward.apply(x);
        INDArray r = randn(99, y0.shape());
        params.forEach(Parameter::zeroGrad);
        INDArray dx = backwardFromFreshForward.apply(r);
        List<GradientChecker.Result> results = new ArrayList<>();
        results.add(GradientChecker.check(what + " dx", x, dx, () -> forward.apply(x).mul(r).sumNumber().doubleValue(), 40, EPS, 1));
        for (Parameter p : params) {
            if (!p.trainable()) continue;
            results.add(GradientChecker.check(what + " d" + p.name(), p.value(), p.grad(),
                    () -> forward.apply(x).mul(r).sumNumber().doubleValue(), 40, EPS, 2));
        }
        for (GradientChecker.Result res : results) assertTrue(res.maxRelativeError() < TOL, res.toString());
    }

    @Test
    void linearBothLayoutsWithBias() {
        for (boolean transposed : new boolean[]{false, true}) {
            Parameter w = param("w", transposed ? randn(1, 5, 4) : randn(1, 4, 5));
            Parameter b = param("b", randn(2, 5));
            Linear lin = new Linear("lin", w, b, transposed);
            INDArray x = randn(3, 6, 4);
            ForwardContext ctx = ForwardContext.inference();
            checkModule("linear(transposed=" + transposed + ")", x, in -> lin.forward(in, ctx).out(),
                    r -> lin.backward(lin.forward(x, ctx), r), List.of(w, b));
        }
    }

    @Test
    void loraOnLinearBothLayouts() {
        for (boolean transposed : new boolean[]{false, true}) {
            Parameter w = param("w", transposed ? randn(1, 5, 4) : randn(1, 4, 5));
            w.setTrainable(false);
            Linear lin = new Linear("lin", w, null, transposed);
            LoraAdapter lora = new LoraAdapter("default", lin, AdapterConfig.lora(3, 6, List.of("lin")),
                    Nd4j.getRandomFactory().getNewRandomInstance(5));
            lora.loraB().value().assign(randn(6, 5, 3));     // B = 0 at init would hide dA
            lin.attach(lora);
            INDArray x = randn(3, 6, 4);
            ForwardContext ctx = ForwardContext.inference();
            checkModule("lora(transposed=" + transposed + ")", x, in -> lin.forward(in, ctx).out(),
                    r -> lin.backward(lin.forward(x, ctx), r), lora.parameters());
        }
    }

    @Test
    void layerNormAndRmsNorm() {
        Parameter g = param("g", randn(1, 7)), bb = param("b", randn(2, 7));
        LayerNorm ln = new LayerNorm(g, bb, 1e-5);
        INDArray x = randn(3, 5, 7);
        checkModule("layernorm", x, in -> ln.forward(in).out(), r -> ln.backward(ln.forward(x), r), List.of(g, bb));
        Parameter g2 = param("g2", randn(4, 7));
        RmsNorm rms = new RmsNorm(g2, 1e-6);
        checkModule("rmsnorm", x, in -> rms.forward(in).out(), r -> rms.backward(rms.forward(x), r), List.of(g2));
    }

    @Test
    void mlps() {
        ForwardContext ctx = ForwardContext.inference();
        Parameter fcW = param("fc.w", randn(1, 6, 10)), fcB = param("fc.b", randn(2, 10));
        Parameter prW = param("proj.w", randn(3, 10, 6)), prB = param("proj.b", randn(4, 6));
        GeluMlp gelu = new GeluMlp(new Linear("fc", fcW, fcB, false), new Linear("proj", prW, prB, false));
        INDArray x = randn(5, 4, 6);
        checkModule("gelu mlp", x, in -> gelu.forward(in, ctx).out(), r -> gelu.backward(gelu.forward(x, ctx), r),
                List.of(fcW, fcB, prW, prB));
        Parameter gw = param("gate", randn(6, 10, 6)), uw = param("up", randn(7, 10, 6)), dw = param("down", randn(8, 6, 10));
        SwiGluMlp swi = new SwiGluMlp(new Linear("gate", gw, null, true), new Linear("up", uw, null, true), new Linear("down", dw, null, true));
        checkModule("swiglu mlp", x, in -> swi.forward(in, ctx).out(), r -> swi.backward(swi.forward(x, ctx), r), List.of(gw, uw, dw));
    }

    @Test
    void attentionGpt2AndLlamaGqa() {
        ForwardContext ctx = ForwardContext.inference();
        int b = 2, t = 5, c = 8;
        INDArray x = randn(1, (long) b * t, c);
        Parameter aw = param("c_attn.w", randn(2, c, 3 * c)), ab = param("c_attn.b", randn(3, 3 * c));
        Parameter pw = param("c_proj.w", randn(4, c, c)), pb = param("c_proj.b", randn(5, c));
        CausalSelfAttention gpt = CausalSelfAttention.fused(new Linear("c_attn", aw, ab, false), new Linear("c_proj", pw, pb, false), 2);
        checkModule("gpt2 attention", x, in -> gpt.forward(in, b, t, ctx).out().out(),
                r -> gpt.backward(gpt.forward(x, b, t, ctx), r), List.of(aw, ab, pw, pb));
        int heads = 4, kv = 2, d = c / heads;
        Parameter qw = param("q", randn(6, heads * d, c)), kw = param("k", randn(7, kv * d, c));
        Parameter vw = param("v", randn(8, kv * d, c)), ow = param("o", randn(9, c, heads * d));
        CausalSelfAttention llama = CausalSelfAttention.separate(new Linear("q", qw, null, true), new Linear("k", kw, null, true),
                new Linear("v", vw, null, true), new Linear("o", ow, null, true), new RotaryEmbedding(d, 10000), heads, kv);
        checkModule("llama attention (rope, gqa)", x, in -> llama.forward(in, b, t, ctx).out().out(),
                r -> llama.backward(llama.forward(x, b, t, ctx), r), List.of(qw, kw, vw, ow));
    }

    @Test
    void attentionIsCausal() {
        // changing the last position must not change earlier outputs
        int b = 1, t = 6, c = 8;
        CausalSelfAttention att = CausalSelfAttention.fused(new Linear("a", param("a", randn(2, c, 3 * c)), null, false),
                new Linear("p", param("p", randn(3, c, c)), null, false), 2);
        INDArray x = randn(1, t, c);
        INDArray y1 = att.forward(x, b, t, ForwardContext.inference()).out().out().dup();
        INDArray x2 = x.dup();
        x2.getRow(t - 1).addi(5.0);
        INDArray y2 = att.forward(x2, b, t, ForwardContext.inference()).out().out();
        for (int i = 0; i < t - 1; i++) {
            assertTrue(y1.getRow(i).equalsWithEps(y2.getRow(i), 1e-12), "position " + i + " saw the future");
        }
        assertTrue(!y1.getRow(t - 1).equalsWithEps(y2.getRow(t - 1), 1e-6));
    }

    /** Whole model: loss w.r.t. LoRA parameters and input embeddings, and w.r.t. base params under full fine-tuning. */
    @Test
    void wholeModelEveryFamily() {
        for (ModelConfig cfg : TinyModels.all()) {
            TransformerLM model = TinyModels.model(cfg, 7);
            List<String> targets = TinyModels.allLinearTargets(cfg);
            AttachedAdapter adapter = AttachedAdapter.attach(model, "default", AdapterConfig.lora(2, 4, targets), 3);
            long seed = 10;
            for (Parameter p : adapter.trainableParameters()) p.value().assign(randn(seed++, p.value().shape()).muli(0.5));
            TokenBatch batch = TinyModels.batch(cfg, 2, 5, 1);
            INDArray h0 = model.embed(batch);
            Runnable zero = () -> adapter.trainableParameters().forEach(Parameter::zeroGrad);
            zero.run();
            TransformerLM.Forward f = model.forwardEmbedded(h0, batch, ForwardContext.inference());
            CrossEntropyLoss.Result r = CrossEntropyLoss.compute(f.logits(), batch.targets(), true);
            INDArray dh0 = model.backward(f, r.dLogits());
            java.util.function.DoubleSupplier loss = () -> CrossEntropyLoss.compute(
                    model.forwardEmbedded(h0, batch, ForwardContext.inference()).logits(), batch.targets(), false).meanLoss();
            List<GradientChecker.Result> results = new ArrayList<>();
            results.add(GradientChecker.check(cfg.architecture() + " d input", h0, dh0, loss, 30, EPS, 1));
            for (Parameter p : adapter.trainableParameters()) {
                results.add(GradientChecker.check(cfg.architecture() + " " + p.name(), p.value(), p.grad(), loss, 6, EPS, 2));
            }
            for (GradientChecker.Result res : results) assertTrue(res.maxRelativeError() < TOL, res.toString());
        }
    }

    @Test
    void wholeModelFullFineTuningIncludingEmbeddings() {
        for (ModelConfig cfg : TinyModels.all()) {
            TransformerLM model = TinyModels.model(cfg, 8);
            TokenBatch batch = TinyModels.batch(cfg, 2, 5, 2);
            model.parameters().values().forEach(Parameter::zeroGrad);
            model.forwardBackward(batch, ForwardContext.inference(), 1.0);
            java.util.function.DoubleSupplier loss = () -> model.loss(batch).meanLoss();
            for (Parameter p : model.parameters().values()) {
                GradientChecker.Result res = GradientChecker.check(cfg.architecture() + " " + p.name(), p.value(), p.grad(), loss, 5, EPS, 3);
                assertTrue(res.maxRelativeError() < TOL, res.toString());
            }
        }
    }
}
