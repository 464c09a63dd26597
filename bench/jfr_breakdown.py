"""Attributes JFR stack samples of the benchmark's main thread to engine source lines.

Usage: java -XX:FlightRecorderOptions:stackdepth=1024 \
            -XX:StartFlightRecording=filename=rec.jfr,settings=bench/jfr-sampling.jfc ... TrainStepBenchmark ...
       jfr print --json --stack-depth 200 --events jdk.NativeMethodSample,jdk.ExecutionSample rec.jfr > rec.json
       python3 bench/jfr_breakdown.py rec.json [--from-seconds S]

(jfr print keeps only 5 frames per stack unless --stack-depth is given, which hides the engine frames.)
The main thread is the one that calls ND4J; while ND4J runs an op it is "in native", so its samples
measure wall time per engine line, OpenMP worker threads included. Categories (see category()) use the
engine's line numbers at the time of writing (Linear.java: 62 forward gemm, 82 dW gemm, 86 dX gemm).

Each sample (in native code, i.e. inside an ND4J/OpenBLAS call, or in Java) is charged to the innermost
io.sparklora.* frame (class.method:line) and to the innermost frame overall (the native entry point).
Samples before --from-seconds (default: skip the first 25% of the recording: JVM start, model
init, warm-up) are ignored.
"""
import collections
import json
import sys


def category(frames):
    """Groups a sample by what the engine was doing (engine file line numbers as of this benchmark)."""
    names = [f["method"]["type"]["name"].split(".")[-1] + "." + f["method"]["name"] for f in frames]
    lines = [f.get("lineNumber") for f in frames]
    in_block = any(n.startswith("TransformerBlock.") for n in names)
    for n, line in zip(names, lines):
        if n.startswith("LoraAdapter."):
            return "LoRA adapter matmuls (x·Aᵀ·Bᵀ and grads)"
        if n == "Linear.forward":
            if line == 62:
                return "weight matmul forward" if in_block else "lm head matmul (forward, dX, dW)"
            return "Linear: base.dup + bias add + adapter delta add"
        if n == "Linear.backward":
            if line in (82, 86):
                what = "dW" if line == 82 else "dX"
                return f"weight matmul backward {what}" if in_block else "lm head matmul (forward, dX, dW)"
            return "Linear: bias grad, grad accumulate, adapter dX add"
        if n.startswith("Parameter.accumulate"):
            continue
        if n.startswith("CausalSelfAttention.toHeads") or n.startswith("CausalSelfAttention.fromHeads"):
            return "attention: head reshuffle copies (toHeads/fromHeads)"
        if n.startswith("CausalSelfAttention."):
            return "attention core (QKᵀ, mask, softmax, PV and their backward)"
        if n.startswith("GeluMlp."):
            return "GELU elementwise (forward + backward)"
        if n.startswith("LayerNorm."):
            return "LayerNorm (forward + backward)"
        if n.startswith("CrossEntropyLoss."):
            return "cross-entropy (softmax over [N,V], one-hot, gradient)"
        if n.startswith("TransformerLM.backwardEmbedding") or n.startswith("TransformerLM.embed"):
            return "embedding gather / scatter-add"
        if n.startswith(("AdamW.", "GradClipping.")):
            return "optimizer: AdamW + clip + zero_grad"
        if n.startswith("TransformerBlock."):
            return "residual adds"
    if any(n == "Parameter.accumulate" for n in names):
        return "gradient accumulate"
    return "other (JVM, GC, benchmark)"


def main():
    path = sys.argv[1]
    skip = None
    if "--from-seconds" in sys.argv:
        skip = float(sys.argv[sys.argv.index("--from-seconds") + 1])
    events = json.load(open(path))["recording"]["events"]
    samples = []
    for e in events:
        v = e["values"]
        thread = (v.get("sampledThread") or {}).get("javaName")
        if thread != "main":
            continue
        frames = (v.get("stackTrace") or {}).get("frames") or []
        for f in frames:
            f["method"]["type"]["name"] = f["method"]["type"]["name"].replace("/", ".")
        samples.append((v["startTime"], e["type"], frames))
    samples.sort(key=lambda s: s[0])
    if not samples:
        print("no samples")
        return
    from datetime import datetime
    def ts(s):
        return datetime.fromisoformat(s[0].replace("Z", "+00:00")).timestamp()
    t0, t1 = ts(samples[0]), ts(samples[-1])
    start = t0 + (skip if skip is not None else 0.25 * (t1 - t0))
    samples = [s for s in samples if ts(s) >= start]
    by_line, by_method, by_native, by_module = collections.Counter(), collections.Counter(), collections.Counter(), collections.Counter()
    by_cat, alloc_by_cat = collections.Counter(), collections.Counter()
    for _, kind, frames in samples:
        def name(f):
            m = f["method"]
            return m["type"]["name"].split(".")[-1] + "." + m["name"]
        inner = next((f for f in frames if f["method"]["type"]["name"].startswith("io.sparklora.")), None)
        if inner is not None:
            by_line[f"{name(inner)}:{inner['lineNumber']}"] += 1
            by_method[name(inner)] += 1
        top = name(frames[0]) if frames else "?"
        cat = category(frames)
        by_cat[cat] += 1
        if top.endswith("allocateDataBuffer"):
            alloc_by_cat[cat] += 1
        by_native[("native " if kind == "jdk.NativeMethodSample" else "java ") + top] += 1
        mods = [name(f) for f in frames if f["method"]["type"]["name"].startswith("io.sparklora.model.")
                or f["method"]["type"]["name"].startswith("io.sparklora.optim.") or f["method"]["type"]["name"].startswith("io.sparklora.adapters.")]
        # outermost engine module below TransformerLM / block level
        outer = next((m for m in reversed(mods) if not m.startswith(("TransformerLM.", "TransformerBlock.", "TrainStepBenchmark"))), None)
        by_module[outer or "other"] += 1
    n = len(samples)
    print(f"{n} main-thread samples over the last {t1 - start:.1f} s")
    print("\n== by category (share of main-thread time; of which inside ND4J buffer allocation) ==")
    for key, cnt in by_cat.most_common():
        print(f"{100.0 * cnt / n:6.1f}%  (alloc {100.0 * alloc_by_cat[key] / n:4.1f}%)  {key}")
    print(f"  total inside ND4J buffer allocation (allocateDataBuffer): {100.0 * sum(alloc_by_cat.values()) / n:.1f}%")
    for title, c, k in (("by engine module", by_module, 25), ("by engine method", by_method, 30),
                        ("by engine source line", by_line, 45), ("by innermost frame", by_native, 25)):
        print(f"\n== {title} ==")
        for key, cnt in c.most_common(k):
            print(f"{100.0 * cnt / n:6.1f}%  {key}")


if __name__ == "__main__":
    main()
