package io.sparklora.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.model.Architecture;
import io.sparklora.model.CausalSelfAttention;
import io.sparklora.model.CrossEntropyLoss;
import io.sparklora.model.FeedForward;
import io.sparklora.model.ForwardContext;
import io.sparklora.model.GeluMlp;
import io.sparklora.model.LayerNorm;
import io.sparklora.model.Linear;
import io.sparklora.model.ModelConfig;
import io.sparklora.model.Norm;
import io.sparklora.model.Parameter;
import io.sparklora.model.TokenBatch;
import io.sparklora.model.TransformerLM;
import io.sparklora.optim.AdamW;
import io.sparklora.optim.GradClipping;
import io.sparklora.optim.ParamGroup;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.memory.conf.WorkspaceConfiguration;
import org.nd4j.linalg.api.memory.enums.AllocationPolicy;
import org.nd4j.linalg.api.memory.enums.LearningPolicy;
import org.nd4j.linalg.api.memory.enums.SpillPolicy;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

import java.io.IOException;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Throughput, model FLOPs utilisation and peak memory of one training step (LoRA or full fine-tuning)
 * of a randomly initialised GPT-2-shaped model. Not a test: a measurement to run by hand, one mode per
 * JVM so the process's peak RSS belongs to that mode ({@code bench/run-train-step.sh} does that).
 *
 * <p>A step is exactly what a trainer does per optimizer step without accumulation:
 * {@code model.forwardBackward(batch, ForwardContext.training(rng), 1.0)}, global-norm clipping,
 * {@code AdamW.step()}, {@code zeroGrad()}. The first {@code --warmup} steps are not timed. FLOPs per
 * token are counted by {@link ModelFlops}; MFU is achieved FLOP/s over the machine's measured ND4J
 * sgemm peak ({@link SgemmPeak}), measured in the same process before the model is built.
 *
 * <p>{@code --profile} replaces {@code forwardBackward} by the same computation spelled out with the
 * model's public modules (same Linear objects, same LayerNorm/attention/MLP code) and times each module's
 * forward and backward. Its loss is checked against the model's own forward first.
 *
 * <pre>
 * options: --mode lora|full  --batch 4 --seq 256 --steps 5 --warmup 3 --layers 12 --d 768 --heads 12
 *          --vocab 50257 --rank 8 --targets c_attn[,c_proj...] --seed 42 --lr 1e-4 --wd 0.01 --clip 1.0
 *          --peak-gflops X (skip the sgemm measurement) --sgemm-reps 5 --profile --out FILE (append JSON) --label TEXT
 *          --gc step|none  --workspace  --checkpointing  --half-activations (saved activations in bfloat16)  --keep-attention-probs (the attention's probabilities kept for
 *          backward instead of recomputed, the default)
 * </pre>
 *
 * <p>Memory: ND4J 1.0.0-M2.1 frees a native buffer only when the JVM garbage-collects the Java object
 * that owns it, and the Java objects are tiny, so without a collection the step's garbage (gigabytes of
 * activations) piles up. {@code --gc step} (the default) calls {@code System.gc()} at the end of every
 * step, inside the timed region, as a trainer would; {@code none} leaves it to the JVM (with the default heap, RSS
 * then grows by the whole step's garbage every step until a collection happens).
 *
 * <p>{@code --workspace} is an experiment that estimates what an allocation-free engine would gain: from
 * the second step on, forward+backward run inside an ND4J workspace (one learned block, reused every
 * step, no malloc, no page faults, no GC needed). It is only safe here because everything that outlives a
 * step (gradient buffers, the cached causal mask, AdamW moments) was allocated during the first step,
 * outside the workspace; the losses printed must equal those of a run without it.
 * The last line printed is one JSON object with all results.
 */
public final class TrainStepBenchmark {

    static final class Options {
        String mode = "lora";
        int batch = 4, seq = 256, steps = 5, warmup = 3, layers = 12, d = 768, heads = 12, vocab = 50257, rank = 8;
        int context = 1024;
        List<String> targets = List.of("c_attn");
        boolean targetsDefault = true;     // no --targets: with --config, the model_type's PEFT defaults
        String config;                     // --config: a config.json to build (random weights) instead of a GPT-2 shape
        long seed = 42;
        double lr = 1e-4, wd = 0.01, clip = 1.0, peakGflops = 0;
        int sgemmReps = 5;
        boolean profile = false;
        String out = null;
        String label = "";
        /** How ND4J's native buffers get released: they are freed only when the JVM collects their Java objects. */
        String gc = "step";
        /** Experiment: run forward+backward inside an ND4J workspace (see the class comment). */
        boolean workspace = false;
        /** Recompute each block in backward instead of keeping its activations. */
        boolean checkpointing = false;
        boolean halfActivations = false;
        /** Selective recomputation: attention probabilities recomputed in backward (the default) or kept. */
        boolean recomputeAttention = true;
        /** How the frozen base is held: none, nf4 or nf4+dq (QLoRA; lora mode only). */
        String quantization = "none";

        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (a.equals("--profile")) { o.profile = true; continue; }
                if (a.equals("--workspace")) { o.workspace = true; continue; }
                if (a.equals("--checkpointing")) { o.checkpointing = true; continue; }
                if (a.equals("--half-activations")) { o.halfActivations = true; continue; }
                if (a.equals("--recompute-attention")) { o.recomputeAttention = true; continue; }
                if (a.equals("--keep-attention-probs")) { o.recomputeAttention = false; continue; }
                if (i + 1 >= args.length) throw new IllegalArgumentException("option " + a + " needs a value");
                String v = args[++i];
                switch (a) {
                    case "--mode" -> {
                        if (!v.equals("lora") && !v.equals("full")) throw new IllegalArgumentException("--mode must be lora or full, got " + v);
                        o.mode = v;
                    }
                    case "--batch" -> o.batch = Integer.parseInt(v);
                    case "--seq" -> o.seq = Integer.parseInt(v);
                    case "--steps" -> o.steps = Integer.parseInt(v);
                    case "--warmup" -> o.warmup = Integer.parseInt(v);
                    case "--layers" -> o.layers = Integer.parseInt(v);
                    case "--d" -> o.d = Integer.parseInt(v);
                    case "--heads" -> o.heads = Integer.parseInt(v);
                    case "--vocab" -> o.vocab = Integer.parseInt(v);
                    case "--config" -> o.config = v;
                    case "--rank" -> o.rank = Integer.parseInt(v);
                    case "--context" -> o.context = Integer.parseInt(v);
                    case "--targets" -> { o.targets = List.of(v.split(",")); o.targetsDefault = false; }
                    case "--seed" -> o.seed = Long.parseLong(v);
                    case "--lr" -> o.lr = Double.parseDouble(v);
                    case "--wd" -> o.wd = Double.parseDouble(v);
                    case "--clip" -> o.clip = Double.parseDouble(v);
                    case "--peak-gflops" -> o.peakGflops = Double.parseDouble(v);
                    case "--sgemm-reps" -> o.sgemmReps = Integer.parseInt(v);
                    case "--out" -> o.out = v;
                    case "--label" -> o.label = v;
                    case "--quantization" -> o.quantization = v;
                    case "--gc" -> {
                        if (!v.equals("none") && !v.equals("step")) {
                            throw new IllegalArgumentException("--gc must be step or none, got " + v);
                        }
                        o.gc = v;
                    }
                    default -> throw new IllegalArgumentException("unknown option " + a);
                }
            }
            if (o.steps < 1) throw new IllegalArgumentException("--steps must be >= 1");
            o.context = Math.max(o.context, o.seq);
            return o;
        }
    }

    private static final WorkspaceConfiguration WORKSPACE = WorkspaceConfiguration.builder()
            .policyAllocation(AllocationPolicy.OVERALLOCATE).overallocationLimit(0.05)
            .policyLearning(LearningPolicy.FIRST_LOOP).policySpill(SpillPolicy.REALLOCATE).build();

    private final Options o;
    private final Map<String, Double> phaseSeconds = new LinkedHashMap<>();   // summed over timed steps
    private final Map<String, double[]> phaseByStep = new LinkedHashMap<>();  // per timed step
    private int timedStep = -1;
    private boolean timing;

    private TrainStepBenchmark(Options o) { this.o = o; }

    public static void main(String[] args) throws IOException {
        Options o = Options.parse(args);
        ObjectNode result = new TrainStepBenchmark(o).run();
        String line = new ObjectMapper().writeValueAsString(result);
        if (o.out != null) {
            Path p = Path.of(o.out);
            if (p.getParent() != null) Files.createDirectories(p.getParent());
            Files.writeString(p, line + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        }
        System.out.println(line);
    }

    ObjectNode run() {
        // 1. the machine's sgemm peak, before the model exists
        SgemmPeak.Result sgemm = null;
        double peak = o.peakGflops;
        if (peak <= 0) {
            sgemm = SgemmPeak.measure(o.sgemmReps);
            peak = sgemm.peakGflops();
            System.out.printf(Locale.ROOT, "sgemm peak: %.1f GFLOP/s %s%n", peak, sgemm.toJson());
        }
        System.gc();
        Nd4j.getMemoryManager().togglePeriodicGc(false);

        // 2. model, adapter, optimizer
        // a Hugging Face config.json (any supported model_type, random weights), else a GPT-2 shape
        ModelConfig config = o.config != null ? ModelConfig.load(java.nio.file.Path.of(o.config))
                : ModelConfig.gpt2(o.vocab, o.d, o.layers, o.heads, o.context);
        if (o.config != null) {
            o.vocab = config.vocabSize();
            if (o.targets == null || o.targetsDefault) o.targets = config.architecture().defaultLoraTargets();
        }
        long t0 = System.nanoTime();
        TransformerLM model = TransformerLM.randomInit(config, o.seed);
        io.sparklora.quant.BaseQuantization quant = io.sparklora.quant.BaseQuantization.parse(o.quantization.replace("+dq", ""),
                o.quantization.endsWith("+dq"), "--quantization");
        if (quant.nf4()) {
            if (!o.mode.equals("lora")) throw new IllegalArgumentException("--quantization needs --mode lora: full fine-tuning trains the base");
            model = io.sparklora.quant.QuantizedCheckpoints.quantize(model, quant.doubleQuant());
            System.gc();     // the fp32 weights it was quantized from are garbage now; ND4J frees them when collected
        }
        model.setActivationCheckpointing(o.checkpointing);
        model.setHalfActivations(o.halfActivations);
        model.setRecomputeAttention(o.recomputeAttention);
        List<Parameter> trainable;
        List<ModelFlops.Adapted> adapted = null;
        AttachedAdapter adapter = null;
        if (o.mode.equals("lora")) {
            adapter = AttachedAdapter.attach(model, "default", AdapterConfig.lora(o.rank, 2.0 * o.rank, o.targets), o.seed);
            trainable = adapter.trainableParameters();
            Map<String, ModelFlops.Adapted> shapes = new LinkedHashMap<>();
            for (String m : adapter.layers().keySet()) {
                Linear l = model.linears().get(m);
                String key = l.inFeatures() + "x" + l.outFeatures();
                ModelFlops.Adapted prev = shapes.get(key);
                shapes.put(key, new ModelFlops.Adapted(l.inFeatures(), l.outFeatures(), prev == null ? 1 : prev.count() + 1));
            }
            adapted = new ArrayList<>(shapes.values());
        } else {
            model.setBaseTrainable(true);
            trainable = new ArrayList<>(model.parameters().values());
        }
        AdamW optimizer = new AdamW(ParamGroup.byTag(trainable, o.wd), o.lr);
        long trainableCount = trainable.stream().filter(Parameter::trainable).mapToLong(Parameter::size).sum();
        // RSS with the model and optimizer built, before any step: the JVM, the native libraries and the weights. The
        // peak minus this is what the steps add (activations, gradients, moments, and the allocator's retained pages).
        long rssBuilt = procStatusBytes("VmRSS");
        System.out.printf(Locale.ROOT, "%s: %s, %d base parameters, %d trainable, built in %.1f s, rss %.2f GiB%n", o.mode, shape(),
                model.baseParameterCount(), trainableCount, (System.nanoTime() - t0) / 1e9, rssBuilt / GIB);

        TokenBatch batch = randomBatch(o.batch, o.seq, o.vocab, o.seed);
        Random rng = Nd4j.getRandomFactory().getNewRandomInstance(o.seed + 1);
        Mirror mirror = o.profile ? new Mirror(model, config) : null;
        if (mirror != null) mirror.checkAgainst(model, batch);

        // 3. steps
        double[] stepSeconds = new double[o.steps];
        double[] losses = new double[o.warmup + o.steps];
        long gcCount0 = 0, gcMillis0 = 0;
        long[] stat0 = null;
        long peakBeforeTimed = -1;
        boolean timedPeakReset = false;
        RssSampler sampler = new RssSampler();
        for (int s = 0; s < o.warmup + o.steps; s++) {
            boolean timed = s >= o.warmup;
            if (timed && s == o.warmup) {
                gcCount0 = gcCount(); gcMillis0 = gcMillis(); stat0 = procSelfStat();
                peakBeforeTimed = procStatusBytes("VmHWM");
                timedPeakReset = resetPeakRss();
            }
            timing = timed;
            sampler.active = timed;
            timedStep = s - o.warmup;
            ForwardContext ctx = ForwardContext.training(rng);
            long a = System.nanoTime();
            CrossEntropyLoss.Result r;
            if (o.workspace && s >= 1) {
                try (MemoryWorkspace ws = Nd4j.getWorkspaceManager().getAndActivateWorkspace(WORKSPACE, "train-step")) {
                    r = mirror != null ? mirror.forwardBackward(batch, ctx) : model.forwardBackward(batch, ctx, 1.0);
                }
            } else {
                r = mirror != null ? mirror.forwardBackward(batch, ctx) : model.forwardBackward(batch, ctx, 1.0);
            }
            long b = System.nanoTime();
            GradClipping.clip(optimizer, o.clip);
            long c = System.nanoTime();
            optimizer.step();
            long d = System.nanoTime();
            optimizer.zeroGrad();
            long d2 = System.nanoTime();
            if (o.gc.equals("step")) System.gc();
            long e = System.nanoTime();
            losses[s] = r.meanLoss();
            if (timed) {
                stepSeconds[s - o.warmup] = (e - a) / 1e9;
                if (mirror == null) add("forward_backward", (b - a) / 1e9);
                add("clip", (c - b) / 1e9);
                add("adamw_step", (d - c) / 1e9);
                add("zero_grad", (d2 - d) / 1e9);
                if (o.gc.equals("step")) add("System.gc", (e - d2) / 1e9);
            }
            System.out.printf(Locale.ROOT, "step %d%s: %.2f s (fwd+bwd %.2f, clip %.2f, adamw %.2f, zero %.2f, gc %.2f), loss %.4f, rss %.2f GiB%n",
                    s, timed ? "" : " (warm-up)", (e - a) / 1e9, (b - a) / 1e9, (c - b) / 1e9, (d - c) / 1e9, (d2 - d) / 1e9, (e - d2) / 1e9,
                    r.meanLoss(), procStatusBytes("VmRSS") / GIB);
        }
        sampler.stop();
        long gcCount = gcCount() - gcCount0, gcMillis = gcMillis() - gcMillis0;
        long[] stat1 = procSelfStat();

        // 4. figures
        double total = Arrays.stream(stepSeconds).sum();
        long tokensPerStep = (long) o.batch * o.seq;
        double tokensPerSecond = tokensPerStep * o.steps / total;
        double flopsPerToken = ModelFlops.trainPerToken(config, o.seq, o.rank, adapted);
        double achieved = flopsPerToken * tokensPerSecond;
        double mfu = achieved / (peak * 1e9);
        // VmHWM was reset before the timed steps (when the kernel allows it): the process peak is the larger
        // of the peak before the reset and the peak since.
        long hwmTimed = procStatusBytes("VmHWM"), rss = procStatusBytes("VmRSS");
        long hwm = Math.max(hwmTimed, peakBeforeTimed);

        long paramBytes = 0, gradBytes = 0;
        paramBytes += model.baseBytesHeld();      // fp32 tensors, and NF4 weights as codes and scales
        if (adapter != null) for (Parameter p : adapter.trainableParameters()) {
            if (!model.parameters().containsKey(p.name())) paramBytes += bytes(p.value());
        }
        for (Parameter p : trainable) if (p.trainable()) gradBytes += bytes(p.value());

        ObjectMapper json = new ObjectMapper();
        ObjectNode r = json.createObjectNode();
        r.put("impl", "spark-lora");
        r.put("label", o.label);
        r.put("base_quantization", quant.label());
        r.put("base_bytes_held", model.baseBytesHeld());
        r.put("mode", o.mode);
        r.put("shape", shape());
        r.put("batch", o.batch);
        r.put("seq", o.seq);
        r.put("tokens_per_step", tokensPerStep);
        r.put("warmup_steps", o.warmup);
        r.put("timed_steps", o.steps);
        r.put("rank", o.mode.equals("lora") ? o.rank : 0);
        r.put("targets", o.mode.equals("lora") ? String.join(",", o.targets) : "");
        r.put("base_parameters", model.baseParameterCount());
        r.put("trainable_parameters", trainableCount);
        r.put("profile", o.profile);
        r.put("gc_policy", o.gc);
        r.put("workspace_experiment", o.workspace);
        r.put("activation_checkpointing", o.checkpointing);
        r.put("half_activations", o.halfActivations);
        r.put("recompute_attention", o.recomputeAttention);
        ArrayNode st = r.putArray("step_seconds");
        for (double s : stepSeconds) st.add(round(s, 3));
        double[] sorted = stepSeconds.clone();
        Arrays.sort(sorted);
        r.put("median_step_seconds", round(median(stepSeconds), 3));
        r.put("best_step_tokens_per_second", round(tokensPerStep / sorted[0], 1));
        r.put("mean_step_seconds", round(total / o.steps, 3));
        r.put("tokens_per_second", round(tokensPerSecond, 1));
        r.put("model_flops_per_token", flopsPerToken);
        r.put("model_flops_per_step", flopsPerToken * tokensPerStep);
        r.put("achieved_gflops", round(achieved / 1e9, 1));
        r.put("sgemm_peak_gflops", round(peak, 1));
        if (sgemm != null) r.set("sgemm_gflops_by_size", sgemmNode(json, sgemm));
        r.put("mfu", round(mfu, 4));
        r.put("peak_rss_bytes", hwm);
        r.put("peak_rss_gib", round(hwm / GIB, 3));
        if (timedPeakReset) r.put("peak_rss_timed_steps_gib", round(hwmTimed / GIB, 3));
        // VmHWM after the reset starts at the warm-up step's resident set, which the JVM's heap inflates (the JIT has not
        // compiled the kernels yet); the sampled maximum is what the timed steps themselves reach
        if (sampler.max > 0) r.put("peak_rss_timed_steps_sampled_gib", round(sampler.max / GIB, 3));
        r.put("final_rss_gib", round(rss / GIB, 3));
        r.put("rss_after_build_gib", round(rssBuilt / GIB, 3));
        r.put("heap_max_gib", round(Runtime.getRuntime().maxMemory() / GIB, 2));
        // ND4J allocates its buffers inside libnd4j (not through JavaCPP's counted Pointer allocator), so
        // there is no off-heap counter to read; the persistent training state is counted from the tensors.
        ObjectNode state = r.putObject("training_state_bytes");
        state.put("parameters", paramBytes);
        state.put("gradients", gradBytes);
        state.put("adamw_moments", optimizer.stateBytes());
        state.put("total", paramBytes + gradBytes + optimizer.stateBytes());
        if (stat0 != null && stat1 != null) {
            // process CPU time per step: wall ≈ (user+sys)/cores when nothing else competes for the cores
            r.put("cpu_user_seconds_per_step", round((stat1[1] - stat0[1]) / CLOCK_TICKS / o.steps, 2));
            r.put("cpu_sys_seconds_per_step", round((stat1[2] - stat0[2]) / CLOCK_TICKS / o.steps, 2));
            r.put("minor_page_faults_per_step", (stat1[0] - stat0[0]) / o.steps);
        }
        r.put("load_average_at_end", loadAverage());
        r.put("gc_count_timed", gcCount);
        r.put("gc_millis_timed", gcMillis);
        ArrayNode ls = r.putArray("losses");
        for (double l : losses) ls.add(round(l, 4));
        // per phase: the median over the timed steps (robust to another process stealing the CPUs for a
        // while) and the mean
        ObjectNode ph = r.putObject("phase_seconds_median");
        phaseByStep.forEach((k, v) -> ph.put(k, round(median(v), 4)));
        ObjectNode pm = r.putObject("phase_seconds_mean");
        phaseSeconds.forEach((k, v) -> pm.put(k, round(v / o.steps, 4)));
        r.put("processors", Runtime.getRuntime().availableProcessors());
        r.put("omp_num_threads", System.getenv().getOrDefault("OMP_NUM_THREADS", ""));
        r.put("java", System.getProperty("java.version"));
        r.put("malloc_tuned", io.sparklora.model.NativeHeap.tune());      // set when the model was built (model/NativeHeap)
        r.put("kernels", io.sparklora.model.kernels.Kernels.active().getClass().getSimpleName());

        if (r.has("cpu_user_seconds_per_step")) {
            System.out.printf(Locale.ROOT, "process CPU per step: user %.2f s, sys %.2f s, %d minor page faults (wall %.2f s)%n",
                    r.get("cpu_user_seconds_per_step").asDouble(), r.get("cpu_sys_seconds_per_step").asDouble(),
                    r.get("minor_page_faults_per_step").asLong(), total / o.steps);
        }
        System.out.printf(Locale.ROOT, "%s: %.1f tokens/s, %.1f GFLOP/s of model FLOPs (%.3g GFLOP/step), MFU %.1f%% of %.1f GFLOP/s sgemm peak, peak RSS %.2f GiB (timed steps: %.2f GiB, sampled %.2f GiB)%n",
                o.mode, tokensPerSecond, achieved / 1e9, flopsPerToken * tokensPerStep / 1e9, 100 * mfu, peak, hwm / GIB,
                (timedPeakReset ? hwmTimed : hwm) / GIB, sampler.max / GIB);
        if (!phaseSeconds.isEmpty()) {
            double medianSum = phaseByStep.values().stream().mapToDouble(TrainStepBenchmark::median).sum();
            System.out.println("time per step by phase (median over the timed steps; share of their sum):");
            phaseByStep.forEach((k, v) -> System.out.printf(Locale.ROOT, "  %-32s %8.3f s  %5.1f%%%n", k, median(v), 100 * median(v) / medianSum));
        }
        return r;
    }

    private String shape() {
        if (o.config != null) return o.config;
        return String.format(Locale.ROOT, "gpt2 L=%d d=%d heads=%d vocab=%d", o.layers, o.d, o.heads, o.vocab);
    }

    private void add(String phase, double seconds) {
        if (!timing) return;
        phaseSeconds.merge(phase, seconds, Double::sum);
        phaseByStep.computeIfAbsent(phase, k -> new double[o.steps])[timedStep] += seconds;
    }

    private static double median(double[] v) {
        double[] c = v.clone();
        Arrays.sort(c);
        return c.length % 2 == 1 ? c[c.length / 2] : (c[c.length / 2 - 1] + c[c.length / 2]) / 2;
    }

    static TokenBatch randomBatch(int b, int t, int vocab, long seed) {
        java.util.Random r = new java.util.Random(seed);
        int[][] blocks = new int[b][t + 1];
        for (int[] row : blocks) for (int j = 0; j < row.length; j++) row[j] = r.nextInt(vocab);
        return TokenBatch.shifted(blocks, null);
    }

    private static ObjectNode sgemmNode(ObjectMapper json, SgemmPeak.Result s) {
        ObjectNode n = json.createObjectNode();
        s.gflopsBySize().forEach((k, v) -> n.put(String.valueOf(k), round(v, 1)));
        return n;
    }

    static final double GIB = 1024.0 * 1024 * 1024;

    static double round(double v, int digits) {
        double f = Math.pow(10, digits);
        return Math.round(v * f) / f;
    }

    private static long bytes(INDArray a) { return a.length() * a.dataType().width(); }

    /** A field of /proc/self/status in bytes (VmHWM = peak resident set, VmRSS = current); -1 if unreadable. */
    static long procStatusBytes(String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field + ":")) {
                    String[] parts = line.substring(field.length() + 1).trim().split("\\s+");
                    return Long.parseLong(parts[0]) * 1024;   // kB
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    /** Samples VmRSS every 5 ms on a daemon thread and keeps the largest value seen while {@link #active}. */
    static final class RssSampler {
        volatile boolean active;
        volatile long max = -1;
        private volatile boolean running = true;
        private final Thread thread;

        RssSampler() {
            thread = new Thread(() -> {
                while (running) {
                    if (active) {
                        long v = procStatusBytes("VmRSS");
                        if (v > max) max = v;
                    }
                    try { Thread.sleep(5); } catch (InterruptedException e) { return; }
                }
            }, "rss-sampler");
            thread.setDaemon(true);
            thread.start();
        }

        void stop() {
            running = false;
            try { thread.join(1000); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
        }
    }

    /** USER_HZ; 100 on every Linux we run on. */
    static final double CLOCK_TICKS = 100.0;

    /** {minflt, utime, stime} of this process from /proc/self/stat (ticks), or null if unreadable. */
    static long[] procSelfStat() {
        try {
            String st = Files.readString(Path.of("/proc/self/stat"));
            String[] f = st.substring(st.lastIndexOf(')') + 2).trim().split("\\s+");
            // fields after the command name start at field 3 (state): minflt = 10, utime = 14, stime = 15
            return new long[]{Long.parseLong(f[10 - 3]), Long.parseLong(f[14 - 3]), Long.parseLong(f[15 - 3])};
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /** Resets VmHWM to the current RSS (writing 5 to /proc/self/clear_refs, Linux 4.0+); false if refused. */
    static boolean resetPeakRss() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (IOException e) {
            return "";
        }
    }

    private static long gcCount() {
        long n = 0;
        for (GarbageCollectorMXBean b : ManagementFactory.getGarbageCollectorMXBeans()) n += Math.max(0, b.getCollectionCount());
        return n;
    }

    private static long gcMillis() {
        long n = 0;
        for (GarbageCollectorMXBean b : ManagementFactory.getGarbageCollectorMXBeans()) n += Math.max(0, b.getCollectionTime());
        return n;
    }

    /**
     * {@link TransformerLM#forwardBackward} spelled out with the model's public modules, timing each one.
     * GPT-2 only. The Linear objects (and so their adapters) are the model's own; the norms, attention and
     * MLP wrappers are built over the model's parameters exactly as the model builds them, and the block
     * code (pre-norm residuals) is {@code TransformerBlock}'s.
     */
    private final class Mirror {
        final TransformerLM model;
        final List<Norm> ln1 = new ArrayList<>(), ln2 = new ArrayList<>();
        final List<CausalSelfAttention> attn = new ArrayList<>();
        final List<FeedForward> mlp = new ArrayList<>();
        final Norm lnF;
        final Linear head;

        Mirror(TransformerLM model, ModelConfig c) {
            if (c.architecture() != Architecture.GPT2) throw new IllegalArgumentException("--profile supports GPT-2 shapes only");
            this.model = model;
            Map<String, Parameter> p = model.parameters();
            Map<String, Linear> lin = model.linears();
            for (int i = 0; i < c.numLayers(); i++) {
                String n = "transformer.h." + i + ".";
                ln1.add(new LayerNorm(p.get(n + "ln_1.weight"), p.get(n + "ln_1.bias"), c.normEps()));
                attn.add(CausalSelfAttention.fused(lin.get(n + "attn.c_attn"), lin.get(n + "attn.c_proj"), c.numHeads()));
                ln2.add(new LayerNorm(p.get(n + "ln_2.weight"), p.get(n + "ln_2.bias"), c.normEps()));
                mlp.add(new GeluMlp(lin.get(n + "mlp.c_fc"), lin.get(n + "mlp.c_proj")));
            }
            lnF = new LayerNorm(p.get("transformer.ln_f.weight"), p.get("transformer.ln_f.bias"), c.normEps());
            List<Linear> all = new ArrayList<>(model.allLinears());
            head = all.get(all.size() - 1);
        }

        void checkAgainst(TransformerLM m, TokenBatch batch) {
            double expected = m.loss(batch).meanLoss();
            boolean was = timing;
            timing = false;
            // a forward-only pass of the mirror (inference context) must give the model's loss
            INDArray h = m.embed(batch);
            for (int i = 0; i < ln1.size(); i++) h = blockForward(i, h, batch, ForwardContext.inference()).out;
            INDArray logits = head.forward(lnF.forward(h).out(), ForwardContext.inference()).out();
            double got = CrossEntropyLoss.compute(logits, batch.targets(), false).meanLoss();
            timing = was;
            if (Math.abs(got - expected) > 1e-4 * Math.max(1, Math.abs(expected))) {
                throw new IllegalStateException("profile mirror diverges from the model: loss " + got + " vs " + expected);
            }
            System.out.printf(Locale.ROOT, "profile mirror matches the model's forward (loss %.6f vs %.6f)%n", got, expected);
        }

        record BlockCache(Norm.Cache n1, CausalSelfAttention.Cache a, Norm.Cache n2, FeedForward.Cache m, INDArray out) {}

        BlockCache blockForward(int i, INDArray x, TokenBatch batch, ForwardContext ctx) {
            long t = System.nanoTime();
            Norm.Cache n1 = ln1.get(i).forward(x);
            t = lap("fwd.ln_1", t);
            CausalSelfAttention.Cache a = attn.get(i).forward(n1.out(), batch.batch(), batch.seq(), ctx);
            t = lap("fwd.attn (c_attn+core+c_proj)", t);
            INDArray h = x.add(a.out().out());
            t = lap("fwd.residual_adds", t);
            Norm.Cache n2 = ln2.get(i).forward(h);
            t = lap("fwd.ln_2", t);
            FeedForward.Cache m = mlp.get(i).forward(n2.out(), ctx);
            t = lap("fwd.mlp (c_fc+gelu+c_proj)", t);
            INDArray out = h.addi(m.out());
            lap("fwd.residual_adds", t);
            return new BlockCache(n1, a, n2, m, out);
        }

        INDArray blockBackward(int i, BlockCache c, INDArray dy) {
            long t = System.nanoTime();
            INDArray dm = mlp.get(i).backward(c.m(), dy);
            t = lap("bwd.mlp (c_fc+gelu+c_proj)", t);
            INDArray dn2 = ln2.get(i).backward(c.n2(), dm);
            t = lap("bwd.ln_2", t);
            INDArray dh = dn2.addi(dy);
            t = lap("bwd.residual_adds", t);
            INDArray da = attn.get(i).backward(c.a(), dh);
            t = lap("bwd.attn (c_attn+core+c_proj)", t);
            INDArray dn1 = ln1.get(i).backward(c.n1(), da);
            t = lap("bwd.ln_1", t);
            INDArray dx = dn1.addi(dh);
            lap("bwd.residual_adds", t);
            return dx;
        }

        CrossEntropyLoss.Result forwardBackward(TokenBatch batch, ForwardContext ctx) {
            long t = System.nanoTime();
            INDArray h = model.embed(batch);
            t = lap("fwd.embed", t);
            List<BlockCache> caches = new ArrayList<>();
            for (int i = 0; i < ln1.size(); i++) {
                BlockCache c = blockForward(i, h, batch, ctx);
                caches.add(c);
                h = c.out();
            }
            t = System.nanoTime();
            Norm.Cache fn = lnF.forward(h);
            t = lap("fwd.ln_f", t);
            Linear.Cache hc = head.forward(fn.out(), ctx);
            t = lap("fwd.lm_head", t);
            CrossEntropyLoss.Result r = CrossEntropyLoss.compute(hc.out(), batch.targets(), true);
            t = lap("loss (cross-entropy fwd+bwd)", t);
            INDArray dFn = head.backward(hc, r.dLogits());
            t = lap("bwd.lm_head", t);
            INDArray dh = lnF.backward(fn, dFn);
            lap("bwd.ln_f", t);
            for (int i = ln1.size() - 1; i >= 0; i--) dh = blockBackward(i, caches.get(i), dh);
            t = System.nanoTime();
            model.backwardEmbedding(batch, dh);
            lap("bwd.embed", t);
            return new CrossEntropyLoss.Result(r.sumLoss(), r.count(), null);
        }

        private long lap(String phase, long since) {
            long now = System.nanoTime();
            add(phase, (now - since) / 1e9);
            return now;
        }
    }
}
