package io.sparklora.adapters;


import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparklora.adapters.dora.DoraAdapter;
import io.sparklora.checkpoint.SafetensorsReader;
import io.sparklora.gradcheck.GradientChecker;
import io.sparklora.model.Architecture;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Parameter;
import io.sparklora.model.TinyModels;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.train.Evaluator;
import io.sparklora.train.TokenBlocks;
import io.sparklora.train.Trainer;
import io.sparklora.train.TrainingOptions;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.BiFunction;
import java.util.function.Function;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The contract every method of the LoRA family passes, written once and run for each method (Spark's part
 * is {@code spark/AdapterMethodsSparkTest}). A new method adds one {@link Case} here and gets all of it:
 * finite-difference gradients (float64, dropout on), equality to the base at init, merge = unmerged and
 * unmerge = base in both weight layouts, a PEFT save/load round trip, the parameter count three ways, and
 * training to a lower validation loss.
 */
class AdapterContractTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * One method under test.
     *
     * @param config     the adapter for a model family (small rank: the test models are 8 wide)
     * @param formula    trainable scalars over the targeted layers (module → {in, out}), written out independently
     * @param peftKeys   the keys PEFT's config class of this method has (adapter_config.json may use no others)
     * @param lr         a learning rate the method trains the tiny model well at
     */
    record Case(String name, Function<Architecture, AdapterConfig> config, BiFunction<Map<String, int[]>, Integer, Long> formula,
                Set<String> peftKeys, double lr) {
        @Override public String toString() { return name; }
    }

    static List<String> targets(Architecture a) {
        return a == Architecture.GPT2 ? List.of("c_attn", "c_fc", "mlp.c_proj") : List.of("q_proj", "v_proj", "gate_proj", "down_proj");
    }

    private static final Set<String> COMMON = Set.of("peft_type", "task_type", "base_model_name_or_path", "target_modules", "bias",
            "fan_in_fan_out", "inference_mode", "modules_to_save", "layers_to_transform", "layers_pattern", "revision");
    private static final Set<String> LORA_KEYS = union(COMMON, Set.of("r", "lora_alpha", "lora_dropout", "use_rslora", "use_dora",
            "init_lora_weights", "rank_pattern", "alpha_pattern", "megatron_config", "megatron_core", "loftq_config", "layer_replication",
            "runtime_config", "lora_bias", "exclude_modules", "eva_config", "corda_config", "trainable_token_indices"));
    private static final Set<String> VERA_KEYS = union(COMMON, Set.of("r", "projection_prng_key", "save_projection", "vera_dropout",
            "d_initial", "init_weights"));

    /** LoHaConfig's keys (it has no fan_in_fan_out). */
    private static final Set<String> LOHA_KEYS = union(minus(COMMON, "fan_in_fan_out"), Set.of("r", "alpha", "rank_dropout", "module_dropout",
            "use_effective_conv2d", "init_weights", "rank_pattern", "alpha_pattern", "exclude_modules"));

    /** LoKrConfig's keys. */
    private static final Set<String> LOKR_KEYS = union(minus(COMMON, "fan_in_fan_out"), Set.of("r", "alpha", "rank_dropout", "module_dropout",
            "rank_dropout_scale", "decompose_both", "decompose_factor", "use_effective_conv2d", "init_weights", "rank_pattern",
            "alpha_pattern", "exclude_modules"));

    /** AdaLoraConfig's keys: LoraConfig's and its own. */
    private static final Set<String> ADALORA_KEYS = union(LORA_KEYS, Set.of("init_r", "target_r", "tinit", "tfinal", "deltaT", "beta1",
            "beta2", "orth_reg_weight", "total_step"));

    /** The most balanced split m·n = dim, m ≤ n (what PEFT's factorization gives with factor −1). */
    private static long[] balanced(long dim) {
        long m = 1;
        for (long k = 1; k * k <= dim; k++) if (dim % k == 0) m = k;
        return new long[]{m, dim / m};
    }

    /** LoKr's trainable count, PEFT's rule written out: w1 [a, c] full unless decompose_both and r < max(a, c)/2; w2 likewise without the flag. */
    private static long lokrCount(int[] d, int r, boolean both) {
        long[] o = balanced(d[1]), i = balanced(d[0]);
        long a = o[0], b = o[1], c = i[0], dd = i[1];
        long w1 = both && r < Math.max(a, c) / 2.0 ? r * (a + c) : a * c;
        long w2 = r < Math.max(b, dd) / 2.0 ? r * (b + dd) : b * dd;
        return w1 + w2;
    }

    /** GloraConfig's keys (PEFT's GLoRA: no bias, fan_in_fan_out or modules_to_save settings). */
    private static final Set<String> GLORA_KEYS = Set.of("peft_type", "task_type", "base_model_name_or_path", "target_modules",
            "inference_mode", "revision", "r", "config_A_B", "config_C", "config_D_E");

    /** GLoRA's trainable count: every tensor PEFT allocates, whatever the support. */
    private static long gloraCount(int[] d, int r) { return 2L * r * (d[0] + d[1]) + (long) r * (d[0] + 1) + 2L * d[1]; }

    private static Set<String> minus(Set<String> a, String key) {
        Set<String> s = new TreeSet<>(a);
        s.remove(key);
        return s;
    }

    private static Set<String> union(Set<String> a, Set<String> b) {
        Set<String> s = new TreeSet<>(a);
        s.addAll(b);
        return s;
    }

    private static long sum(Map<String, int[]> shapes, java.util.function.ToLongFunction<int[]> f) {
        return shapes.values().stream().mapToLong(f).sum();
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case("lora", a -> AdapterConfig.lora(2, 4, targets(a)).withDropout(0.2),
                        (s, r) -> sum(s, d -> (long) r * (d[0] + d[1])), LORA_KEYS, 3e-2),
                new Case("lora+rslora+bias", a -> AdapterConfig.lora(2, 4, targets(a)).withDropout(0.2).withRslora(true).withBias("lora_only"),
                        (s, r) -> sum(s, d -> (long) r * (d[0] + d[1])), LORA_KEYS, 3e-2),
                new Case("loraplus", a -> AdapterConfig.of("loraplus", 2, 4, targets(a)).withDropout(0.2),
                        (s, r) -> sum(s, d -> (long) r * (d[0] + d[1])), LORA_KEYS, 3e-3),    // B at 16 × lr
                new Case("lora_fa", a -> AdapterConfig.of("lora_fa", 2, 4, targets(a)).withDropout(0.2),
                        (s, r) -> sum(s, d -> (long) r * d[1]), LORA_KEYS, 3e-2),
                new Case("dora", a -> AdapterConfig.of("dora", 2, 4, targets(a)).withDropout(0.2),
                        (s, r) -> sum(s, d -> (long) r * (d[0] + d[1]) + d[1]), LORA_KEYS, 3e-2),
                new Case("vera", a -> AdapterConfig.of("vera", 4, 1, targets(a)).withDropout(0.2).withOption("d_initial", "0.5"),
                        (s, r) -> sum(s, d -> r + d[1]), VERA_KEYS, 3e-2),
                // LoHa's dropouts are rank and module dropout; the gradient check runs with rank dropout on
                new Case("loha", a -> AdapterConfig.of("loha", 2, 4, targets(a)).withOption("rank_dropout", "0.2"),
                        (s, r) -> sum(s, d -> 2L * r * (d[0] + d[1])), LOHA_KEYS, 3e-2),
                // r = 2: w1 full, w2 low-rank where max(b, d) > 4 (8 → 24: w2 [6, 4] is a rank-2 product)
                new Case("lokr", a -> AdapterConfig.of("lokr", 2, 8, targets(a)).withOption("rank_dropout", "0.2"),
                        (s, r) -> sum(s, d -> lokrCount(d, r, false)), LOKR_KEYS, 3e-2),
                // decompose_both with r = 1: both factors low-rank where they are big enough
                // no warm-up: W follows λ·Δ(BA) from the first step (the paper's dropout must be 0)
                new Case("delta_lora", a -> AdapterConfig.of("delta_lora", 2, 4, targets(a)).withOption("delta_warmup", "0").withOption("delta_lambda", "0.5"),
                        (s, r) -> sum(s, d -> (long) r * (d[0] + d[1])), LORA_KEYS, 3e-2),
                // PEFT's default structure (lora, lora, lora, constant, constant) on every layer
                new Case("glora", a -> AdapterConfig.of("glora", 2, 1, targets(a)),
                        (s, r) -> sum(s, d -> gloraCount(d, r)), GLORA_KEYS, 3e-2),
                // every support of every term somewhere, per layer; the PEFT file states the general form
                new Case("glora+layers", a -> AdapterConfig.of("glora", 2, 1, targets(a)).withOption("layer_structures", a == Architecture.GPT2
                                ? "c_attn=vector,vector,vector,vector,vector; c_fc=constant,constant,none,constant,constant; mlp.c_proj=none,lora,lora,none,none"
                                : "q_proj=vector,constant,vector,vector,constant; v_proj=constant,vector,none,none,vector; gate_proj=none,none,lora,constant,none"),
                        (s, r) -> sum(s, d -> gloraCount(d, r)), GLORA_KEYS, 3e-2),
                // DyLoRA at its full rank (the rank a training step uses before the hooks draw one); the frozen rule stops
                // gradients on purpose, so the contract's gradient check runs the rule that trains all of the first b
                new Case("dylora", a -> AdapterConfig.of("dylora", 4, 8, targets(a)).withDropout(0.2).withOption("dylora_update", "all"),
                        (s, r) -> sum(s, d -> (long) r * (d[0] + d[1])), LORA_KEYS, 3e-2),
                // AdaLoRA: r = init_r; the orthogonality penalty, importance and allocation run in the hooks (AdaLoraTest)
                new Case("adalora", a -> AdapterConfig.of("adalora", 4, 8, targets(a)).withDropout(0.2).withOption("target_r", "2"),
                        (s, r) -> sum(s, d -> (long) r * (d[0] + d[1] + 1)), ADALORA_KEYS, 3e-2),
                new Case("lokr+decompose_both", a -> AdapterConfig.of("lokr", 1, 4, targets(a)).withOption("decompose_both", "true")
                        .withOption("rank_dropout", "0.2").withOption("rank_dropout_scale", "true"),
                        (s, r) -> sum(s, d -> lokrCount(d, r, true)), LOKR_KEYS, 3e-2));
    }

    private static final List<ModelConfig> FAMILIES = List.of(TinyModels.gpt2(), TinyModels.llama());

    private static INDArray randn(long seed, long... shape) {
        return Nd4j.randn(Nd4j.getRandomFactory().getNewRandomInstance(seed), shape);
    }

    /** Moves every trainable tensor away from its init (B = 0 or λ_b = 0 would hide gradients and merges). */
    private static void perturb(AttachedAdapter a, long seed) {
        for (Parameter p : a.trainableParameters()) {
            INDArray noise = randn(seed++, p.value().shape()).castTo(p.value().dataType());
            if (p.group().equals("lora_magnitude_vector")) p.value().muli(noise.muli(0.2).addi(1.0));
            else p.value().assign(noise.muli(0.3));
        }
    }

    private static ForwardContext dropoutContext() {
        return ForwardContext.training(Nd4j.getRandomFactory().getNewRandomInstance(77));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void gradientsMatchFiniteDifferencesInFloat64WithDropout(Case c) {
        for (ModelConfig cfg : FAMILIES) {
            TransformerLM model = TinyModels.model(cfg, 7);
            AttachedAdapter adapter = AttachedAdapter.attach(model, "default", c.config().apply(cfg.architecture()), 3);
            perturb(adapter, 10);
            for (Adapter a : adapter.layers().values()) if (a instanceof DoraAdapter d) d.holdNorm(true);
            for (Adapter a : adapter.layers().values()) {
                // Delta-LoRA: a non-zero snapshot, then W_t held (the step's gradient treats it as a constant)
                if (a instanceof io.sparklora.adapters.deltalora.DeltaLoraAdapter dl) dl.snapshot();
            }
            perturb(adapter, 20);
            for (Adapter a : adapter.layers().values()) if (a instanceof io.sparklora.adapters.deltalora.DeltaLoraAdapter dl) dl.holdW(true);
            TokenBatch batch = TinyModels.batch(cfg, 2, 5, 1);
            INDArray h0 = model.embed(batch);
            adapter.trainableParameters().forEach(Parameter::zeroGrad);
            TransformerLM.Forward f = model.forwardEmbedded(h0, batch, dropoutContext());
            CrossEntropyLoss.Result r = CrossEntropyLoss.compute(f.logits(), batch.targets(), true);
            INDArray dh0 = model.backward(f, r.dLogits());
            java.util.function.DoubleSupplier loss = () -> CrossEntropyLoss.compute(
                    model.forwardEmbedded(h0, batch, dropoutContext()).logits(), batch.targets(), false).meanLoss();
            List<GradientChecker.Result> results = new ArrayList<>();
            results.add(GradientChecker.check(c + " " + cfg.architecture() + " d input", h0, dh0, loss, 20, 1e-6, 1));
            for (Parameter p : adapter.trainableParameters()) {
                assertNotNull(p.grad(), p.name());
                results.add(GradientChecker.check(c + " " + cfg.architecture() + " " + p.name(), p.value(), p.grad(), loss, 6, 1e-6, 2));
            }
            for (GradientChecker.Result res : results) assertTrue(res.maxRelativeError() < 1e-5, res.toString());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void theAdaptedModelStartsEqualToTheBase(Case c) {
        for (ModelConfig cfg : FAMILIES) {
            TransformerLM model = TinyModels.model(cfg, 7);
            TokenBatch batch = TinyModels.batch(cfg, 2, 5, 1);
            INDArray before = model.logits(batch).dup();
            AttachedAdapter.attach(model, "default", c.config().apply(cfg.architecture()), 3);
            INDArray after = model.logits(batch);
            assertEquals(0.0, before.sub(after).amaxNumber().doubleValue(), 1e-12, c + " " + cfg.architecture());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void aMixedBatchGivesEachSequenceOnlyItsOwnAdapter(Case c) {
        // the method's adapter beside a plain LoRA on the same layers; one forward, sequences routed to either or to none
        for (ModelConfig cfg : FAMILIES) {
            TransformerLM model = TinyModels.model(cfg, 7);
            perturb(AttachedAdapter.attach(model, "m", c.config().apply(cfg.architecture()), 3), 20);
            perturb(AttachedAdapter.attach(model, "other", AdapterConfig.lora(2, 4, targets(cfg.architecture())), 4), 40);
            String[] route = {"m", TransformerLM.BASE_ONLY, "other", "m"};
            TokenBatch batch = TinyModels.batch(cfg, route.length, 5, 2);
            INDArray mixed = model.logits(batch, route).dup();
            int[][] ids = batch.inputs().toIntMatrix(), targets = batch.targets().toIntMatrix();
            for (int s = 0; s < route.length; s++) {
                for (io.sparklora.model.Linear l : model.allLinears()) {
                    l.setActive(route[s].equals(TransformerLM.BASE_ONLY) ? List.of() : List.of(route[s]));
                }
                INDArray alone = model.logits(TokenBatch.of(new int[][]{ids[s]}, new int[][]{targets[s]}));
                INDArray rows = mixed.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(s * 5, (s + 1) * 5), org.nd4j.linalg.indexing.NDArrayIndex.all());
                assertEquals(0.0, rows.sub(alone).amaxNumber().doubleValue(), 1e-5, c + " " + cfg.architecture() + ": sequence " + s + " (" + route[s] + ")");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void mergedEqualsUnmergedAndUnmergeRestoresTheBaseInBothLayouts(Case c) {
        for (ModelConfig cfg : FAMILIES) {       // GPT-2's Conv1D [in, out] and Llama's nn.Linear [out, in]
            TransformerLM model = TransformerLM.randomInit(cfg, 5, DataType.FLOAT);
            Map<String, INDArray> base = new HashMap<>();
            model.stateDict().forEach((k, v) -> base.put(k, v.dup()));
            AttachedAdapter adapter = AttachedAdapter.attach(model, "default", c.config().apply(cfg.architecture()), 3);
            perturb(adapter, 20);
            TokenBatch batch = TinyModels.batch(cfg, 2, 6, 4);
            INDArray adapted = model.logits(batch).dup();
            adapter.merge();
            INDArray merged = model.logits(batch).dup();
            double scale = adapted.amaxNumber().doubleValue();
            assertEquals(0.0, adapted.sub(merged).amaxNumber().doubleValue() / scale, 1e-5, c + " " + cfg.architecture() + ": merged vs adapted");
            boolean changed = false;
            for (String m : adapter.layers().keySet()) {
                String w = model.linears().get(m).weight().name();
                changed |= model.stateDict().get(w).sub(base.get(w)).amaxNumber().doubleValue() > 1e-4;
            }
            assertTrue(changed, c + ": merging changed no weight");
            adapter.unmerge();
            Set<String> trained = AttachedAdapter.trainedBaseTensors(cfg, adapter.config());   // biases train; they are not merged
            for (Map.Entry<String, INDArray> e : model.stateDict().entrySet()) {
                if (trained.contains(e.getKey())) continue;
                double d = e.getValue().sub(base.get(e.getKey())).amaxNumber().doubleValue();
                assertEquals(0.0, d, 1e-5, c + " " + cfg.architecture() + ": unmerge left " + e.getKey() + " off by " + d);
            }
            assertEquals(0.0, adapted.sub(model.logits(batch)).amaxNumber().doubleValue() / scale, 1e-5, c + ": adapted again after unmerge");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void saveThenLoadGivesIdenticalLogitsInPeftLayout(Case c, @TempDir Path tmp) throws Exception {
        for (ModelConfig cfg : FAMILIES) {
            TransformerLM model = TransformerLM.randomInit(cfg, 5, DataType.FLOAT);
            AdapterConfig ac = c.config().apply(cfg.architecture());
            AttachedAdapter adapter = AttachedAdapter.attach(model, "default", ac, 3);
            perturb(adapter, 30);
            TokenBatch batch = TinyModels.batch(cfg, 2, 6, 4);
            INDArray expected = model.logits(batch).dup();
            Path dir = tmp.resolve(cfg.architecture().name());
            PeftAdapterFormat.save(adapter, dir, "tiny");

            JsonNode json = JSON.readTree(Files.readString(dir.resolve(PeftAdapterFormat.CONFIG_FILE)));
            json.fieldNames().forEachRemaining(k -> assertTrue(c.peftKeys().contains(k), c + ": adapter_config.json has key '" + k + "', which PEFT's config does not"));
            assertEquals(ac.adapterMethod().peftType(), json.get("peft_type").asText());
            if (c.peftKeys().contains("fan_in_fan_out")) assertEquals(cfg.architecture() == Architecture.GPT2, json.get("fan_in_fan_out").asBoolean());
            // a method PEFT cannot load on this family says so in the sidecar
            String caveat = ac.adapterMethod().peftCaveat(cfg.architecture());
            JsonNode sidecar = JSON.readTree(Files.readString(dir.resolve(PeftAdapterFormat.SIDECAR_FILE)));
            assertEquals(caveat, sidecar.has("peft_caveat") ? sidecar.get("peft_caveat").asText() : null);
            try (SafetensorsReader r = SafetensorsReader.open(dir.resolve(PeftAdapterFormat.WEIGHTS_FILE))) {
                assertEquals("pt", r.metadata().get("format"));
                for (String n : r.names()) {
                    assertTrue(n.startsWith("base_model.model.") || n.equals("base_model.vera_A") || n.equals("base_model.vera_B"), n);
                    assertFalse(n.contains(".default."), "the adapter name is not part of saved names: " + n);
                }
            }

            TransformerLM fresh = TransformerLM.randomInit(cfg, 5, DataType.FLOAT);
            AttachedAdapter loaded = PeftAdapterFormat.load(fresh, dir, "default");
            assertEquals(ac, loaded.config(), c + ": the config reads back as written");
            // bit-exact, except Delta-LoRA: its file is the rank-2r form, B scaled by (s+λ)/s and back in float32
            double tol = ac.method().equals("delta_lora") ? 1e-5 : 0.0;
            assertEquals(0.0, expected.sub(fresh.logits(batch)).amaxNumber().doubleValue(), tol, c + " " + cfg.architecture());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void trainableCountEqualsTheFormulaTheReportAndTheModel(Case c) {
        for (ModelConfig cfg : List.of(TinyModels.gpt2(), TinyModels.llama(), ModelConfig.gpt2(50257, 768, 12, 12, 1024))) {
            AdapterConfig ac = c.config().apply(cfg.architecture());
            Map<String, int[]> shapes = new java.util.LinkedHashMap<>();
            Map<String, int[]> all = ParameterCounter.linearShapes(cfg);
            for (String m : TargetMatcher.select(all.keySet(), ac.targetModules())) shapes.put(m, all.get(m));
            long biases = AttachedAdapter.trainedBaseTensors(cfg, ac).stream()
                    .mapToLong(n -> TransformerLM.expectedShapes(cfg).get(n)[0]).sum();
            long expected = c.formula().apply(shapes, ac.r()) + biases;
            ParameterReport report = ParameterCounter.report(cfg, ac);
            assertEquals(expected, report.trainable(), c + " " + cfg + ": report vs formula");
            if (cfg.hiddenSize() > 100) continue;      // the 124M model is counted from its config only
            AttachedAdapter attached = AttachedAdapter.attach(TinyModels.model(cfg, 1), "default", ac, 1);
            assertEquals(expected, attached.trainableParameterCount(), c + ": trainable scalars the attached model holds");
            assertEquals(expected, attached.model().parameters().values().stream().filter(Parameter::trainable).mapToLong(Parameter::size).sum()
                    + attached.adapterTensors().stream().filter(Parameter::trainable).mapToLong(Parameter::size).sum(), c + ": counted by trainable flags");
            assertEquals(report.all(), attached.report().all(), c + ": all params, from the config and from the model");
        }
    }

    /** Blocks of a learnable rule (each token follows its predecessor by a fixed step), so training has something to learn. */
    static TokenBlocks ruleBlocks(int n, int seqLen, int vocab, long seed) {
        java.util.Random r = new java.util.Random(seed);
        TokenBlocks b = new TokenBlocks(seqLen);
        for (int i = 0; i < n; i++) {
            int[] t = new int[seqLen + 1];
            boolean[] m = new boolean[seqLen + 1];
            t[0] = r.nextInt(vocab);
            for (int j = 1; j <= seqLen; j++) t[j] = (t[j - 1] + 3) % vocab;
            java.util.Arrays.fill(m, true);
            b.add(t, m);
        }
        return b;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void aTinyModelTrainsToALowerValidationLoss(Case c) {
        ModelConfig cfg = TinyModels.gpt2();
        TransformerLM model = TransformerLM.randomInit(cfg, 9, DataType.FLOAT);
        // dropouts off, the methods' own (rank, module) too: this checks that training reaches a lower loss at all
        AdapterConfig ac = c.config().apply(cfg.architecture()).withDropout(0.0);
        for (String k : List.of("rank_dropout", "module_dropout")) {
            if (ac.adapterMethod().optionDefaults().containsKey(k)) ac = ac.withOption(k, "0");
        }
        AttachedAdapter adapter = AttachedAdapter.attach(model, "default", ac, 4);
        TokenBlocks train = ruleBlocks(32, 8, cfg.vocabSize(), 1), val = ruleBlocks(8, 8, cfg.vocabSize(), 2);
        double before = Evaluator.evaluate(model, val, 4).loss();
        TrainingOptions o = new TrainingOptions(40, 4, 1, c.lr(), 0.0, 0, "constant", 0.0, 1.0, 5);
        Trainer.forAdapter(adapter, o).train(train, s -> {});
        double after = Evaluator.evaluate(model, val, 4).loss();
        assertTrue(after < before - 0.05, c + ": validation loss " + before + " -> " + after);
    }
}
