"""Attributes JFR stack samples of the benchmark's main thread to engine source lines.

Usage: jfr print --json --events jdk.NativeMethodSample,jdk.ExecutionSample REC.jfr > rec.json
       python3 bench/jfr_breakdown.py rec.json [--from-seconds S]

Each sample (in native code, i.e. inside an ND4J/OpenBLAS call, or in Java) is charged to the innermost
io.sparklora.* frame (class.method:line) and to the innermost frame overall (the native entry point).
Samples before --from-seconds (default: skip the first 25% of the recording: JVM start, model
init, warm-up) are ignored.
"""
import collections
import json
import sys


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
    for _, kind, frames in samples:
        def name(f):
            m = f["method"]
            return m["type"]["name"].split(".")[-1] + "." + m["name"]
        inner = next((f for f in frames if f["method"]["type"]["name"].startswith("io.sparklora.")), None)
        if inner is not None:
            by_line[f"{name(inner)}:{inner['lineNumber']}"] += 1
            by_method[name(inner)] += 1
        top = name(frames[0]) if frames else "?"
        by_native[("native " if kind == "jdk.NativeMethodSample" else "java ") + top] += 1
        mods = [name(f) for f in frames if f["method"]["type"]["name"].startswith("io.sparklora.model.")
                or f["method"]["type"]["name"].startswith("io.sparklora.optim.") or f["method"]["type"]["name"].startswith("io.sparklora.adapters.")]
        # outermost engine module below TransformerLM / block level
        outer = next((m for m in reversed(mods) if not m.startswith(("TransformerLM.", "TransformerBlock.", "TrainStepBenchmark"))), None)
        by_module[outer or "other"] += 1
    n = len(samples)
    print(f"{n} main-thread samples over the last {t1 - start:.1f} s")
    for title, c, k in (("by engine module", by_module, 25), ("by engine method", by_method, 30),
                        ("by engine source line", by_line, 45), ("by innermost frame", by_native, 25)):
        print(f"\n== {title} ==")
        for key, cnt in c.most_common(k):
            print(f"{100.0 * cnt / n:6.1f}%  {key}")


if __name__ == "__main__":
    main()
