#!/usr/bin/env python3
"""Soak sampler for bench/run-soak.sh: runs a spark-lora command and, every --interval seconds, samples the driver
JVM (the command's own process) and every executor JVM below it (CoarseGrainedExecutorBackend): RSS and threads from
/proc/PID/status, open file descriptors from /proc/PID/fd, and every --nmt-every samples the JVM's native memory
(NMT total committed, through jcmd). Each sample carries the newest train round of the run's metrics.jsonl.

After the run it reads the JVMs' GC logs (-Xlog:gc with uptimemillis,timemillis decorations) for the heap after each
GC, and fits each figure against the round by least squares over the rounds after the warm-up (the first
--warmup-fraction of the rounds, at least --warmup-min) up to the last: slope per round, R^2 and the change over the
window. Writes samples.jsonl, gc.jsonl and summary.json to --out, and prints the summary.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np


def read_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return {"rss_kb": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"])}


def count_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def executors(root_pid):
    """Executor JVMs descending from root_pid."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            if "CoarseGrainedExecutorBackend" not in cmdline(pid):
                continue
            p = pid
            while p > 1:
                p = parent(p)
                if p == root_pid:
                    found.append(pid)
                    break
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
    return sorted(found)


def nmt_committed_kb(pid):
    try:
        out = subprocess.run(["jcmd", str(pid), "VM.native_memory", "summary"], capture_output=True, text=True, timeout=30).stdout
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return None
    m = re.search(r"Total: reserved=(\d+)KB, committed=(\d+)KB", out)
    return int(m.group(2)) if m else None


def last_round(metrics):
    try:
        with open(metrics) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    r = None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            j = json.loads(line)
        except json.JSONDecodeError:
            continue
        if j.get("stage") == "train" and "round" in j:
            r = j["round"]
    return r


# the JVM prints its decorations in a fixed order (timemillis before uptimemillis): the larger is the epoch time
GC_LINE = re.compile(r"^\[(\d+)ms\]\[(\d+)ms\] GC\((\d+)\) (Pause .*?) (\d+)M->(\d+)M\((\d+)M\)")


def read_gc(path):
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            m = GC_LINE.match(line)
            if m:
                events.append({"epoch_ms": max(int(m.group(1)), int(m.group(2))), "gc": int(m.group(3)), "kind": m.group(4),
                               "before_mb": int(m.group(5)), "after_mb": int(m.group(6)), "heap_mb": int(m.group(7))})
    return events


def fit(rounds, values):
    x = np.asarray(rounds, dtype=float)
    y = np.asarray(values, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    pred = slope * x + intercept
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"slope_per_round": float(slope), "r2": (1 - ss_res / ss_tot) if ss_tot > 0 else None, "n": int(len(x)),
            "first": float(y[0]), "last": float(y[-1]), "min": float(y.min()), "max": float(y.max()),
            "fitted_change_over_window": float(slope * np.ptp(x))}


def bucket_minima(rounds, values, buckets=10):
    """The lowest value in each of `buckets` equal round ranges: the floor a leak would raise."""
    x = np.asarray(rounds, dtype=float)
    y = np.asarray(values, dtype=float)
    edges = np.linspace(x.min(), x.max(), buckets + 1)
    xs, ys = [], []
    for i in range(buckets):
        sel = (x >= edges[i]) & (x <= edges[i + 1])
        if sel.any():
            j = np.argmin(np.where(sel, y, np.inf))
            xs.append(x[j])
            ys.append(y[j])
    return xs, ys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=5)
    ap.add_argument("--nmt-every", type=int, default=6, help="sample NMT every this many samples (jcmd costs a JVM start)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--warmup-fraction", type=float, default=0.1)
    ap.add_argument("--warmup-min", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=0, help="stop the run (SIGTERM) after this long and analyse what it reached; 0: no limit")
    ap.add_argument("--full-gc-every", type=float, default=0,
                    help="every this many seconds, ask every JVM for a full collection (jcmd PID GC.run), so that garbage"
                         " holding native ND4J buffers cannot pass for a leak; 0: never")
    ap.add_argument("--analyse-only", action="store_true", help="analyse the samples.jsonl and GC logs already in --out")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command and a.command[0] == "--" else a.command
    os.makedirs(a.out, exist_ok=True)
    if a.analyse_only:
        samples = [json.loads(l) for l in open(os.path.join(a.out, "samples.jsonl"))]
        old = json.load(open(os.path.join(a.out, "summary.json")))
        summary = analyse(a, samples, old["exit_code"], old["seconds"])
        summary["stopped_after_max_seconds"] = old.get("stopped_after_max_seconds", False)
        with open(os.path.join(a.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print_summary(summary)
        return
    log = open(os.path.join(a.out, "run.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.time()
    samples = []
    n = 0
    last_gc = t0
    with open(os.path.join(a.out, "samples.jsonl"), "w") as sf:
        stopped = False
        while proc.poll() is None:
            now = time.time()
            if a.max_seconds and not stopped and now - t0 > a.max_seconds:
                print(f"soak: stopping the run after {a.max_seconds:.0f} s (--max-seconds)", file=sys.stderr)
                proc.terminate()     # the driver's shutdown hook stops Spark, whose Workers stop the executors
                stopped = True
            rnd = last_round(a.metrics)
            row = {"t_s": round(now - t0, 2), "epoch_ms": int(now * 1000), "round": rnd, "procs": {}}
            pids = [("driver", proc.pid)] + [(f"executor-{p}", p) for p in executors(proc.pid)]
            if a.full_gc_every and now - last_gc >= a.full_gc_every:
                for _, pid in pids:
                    subprocess.run(["jcmd", str(pid), "GC.run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                row["full_gc"] = True
                last_gc = now
                time.sleep(1.0)      # let JavaCPP's deallocator free the native buffers of what was collected
            for name, pid in pids:
                try:
                    s = read_status(pid)
                    s["fds"] = count_fds(pid)
                    if n % a.nmt_every == 0:
                        s["nmt_committed_kb"] = nmt_committed_kb(pid)
                    row["procs"][name] = s
                except (FileNotFoundError, ProcessLookupError, PermissionError, KeyError):
                    pass
            samples.append(row)
            sf.write(json.dumps(row) + "\n")
            sf.flush()
            n += 1
            time.sleep(max(0.0, a.interval - (time.time() - now)))
    rc = proc.wait()
    log.close()
    summary = analyse(a, samples, rc, time.time() - t0)
    summary["stopped_after_max_seconds"] = stopped
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print_summary(summary)
    sys.exit(0 if stopped else rc)


def analyse(a, samples, rc, seconds):
    rounds_reached = max([s["round"] for s in samples if s["round"] is not None], default=0)
    warmup = max(a.warmup_min, int(a.warmup_fraction * rounds_reached))
    # the train stage's window: after the warm-up, before the last round (afterwards evaluate runs)
    window = [s for s in samples if s["round"] is not None and warmup < s["round"] < rounds_reached]
    summary = {"exit_code": rc, "seconds": round(seconds, 1), "rounds_reached": rounds_reached, "warmup_rounds": warmup,
               "samples": len(samples), "window_samples": len(window), "processes": {}}
    if window:
        summary["window_seconds"] = round(window[-1]["t_s"] - window[0]["t_s"], 1)
        summary["seconds_per_round"] = round(summary["window_seconds"] / max(1, window[-1]["round"] - window[0]["round"]), 3)
    names = sorted({n for s in window for n in s["procs"]})
    for name in names:
        res = {}
        for metric, scale, unit in [("rss_kb", 1024, "bytes"), ("fds", 1, "fds"), ("threads", 1, "threads"),
                                    ("nmt_committed_kb", 1024, "bytes")]:
            pts = [(s["round"], s["procs"][name][metric] * scale) for s in window
                   if name in s["procs"] and s["procs"][name].get(metric) is not None]
            f = fit([p[0] for p in pts], [p[1] for p in pts])
            if f:
                f["unit"] = unit
                res[metric.replace("_kb", "")] = f
        # the samples taken right after a forced full collection: the floor that garbage cannot inflate
        pts = [(s["round"], s["procs"][name]["rss_kb"] * 1024) for s in window if s.get("full_gc") and name in s["procs"]]
        f = fit([p[0] for p in pts], [p[1] for p in pts])
        if f:
            f["unit"] = "bytes"
            res["rss_after_full_gc"] = f
        summary["processes"][name] = res
    # heap after GC, from the GC logs, each GC placed at the round the run had reached then
    t = np.array([s["epoch_ms"] for s in samples if s["round"] is not None], dtype=float)
    r = np.array([s["round"] for s in samples if s["round"] is not None], dtype=float)
    gc_out = open(os.path.join(a.out, "gc.jsonl"), "w")
    for fname in sorted(os.listdir(a.out)):
        m = re.match(r"gc-(driver|executor-(\d+))\.log$", fname)
        if not m or len(t) == 0:
            continue
        name = "driver" if m.group(1) == "driver" else f"executor-{m.group(2)}"
        events = read_gc(os.path.join(a.out, fname))
        for e in events:
            e["process"] = name
            e["round"] = float(np.interp(e["epoch_ms"], t, r, left=np.nan, right=np.nan))
            gc_out.write(json.dumps(e) + "\n")
        ev = [e for e in events if not np.isnan(e["round"]) and warmup < e["round"] < rounds_reached]
        if not ev:
            continue
        xs, ys = [e["round"] for e in ev], [e["after_mb"] * 2 ** 20 for e in ev]
        res = summary["processes"].setdefault(name, {})
        f = fit(xs, ys)
        if f:
            f["unit"] = "bytes"
            res["heap_after_gc"] = f
        bx, by = bucket_minima(xs, ys)
        f = fit(bx, by)
        if f:
            f["unit"] = "bytes"
            res["heap_after_gc_floor"] = f
    gc_out.close()
    return summary


def print_summary(s):
    print(f"soak: exit {s['exit_code']}, {s['seconds']} s, {s['rounds_reached']} rounds; fitted over rounds "
          f"{s['warmup_rounds']}..{s['rounds_reached']} ({s['window_samples']} samples, {s.get('seconds_per_round')} s/round)")
    for name, res in s["processes"].items():
        for metric, f in res.items():
            r2 = "" if f["r2"] is None else f" R^2 {f['r2']:.2f}"
            if f["unit"] == "bytes":
                print(f"  {name:<18} {metric:<20} slope {f['slope_per_round'] / 1024:+10.2f} KiB/round{r2}; "
                      f"{f['first'] / 2**20:8.1f} -> {f['last'] / 2**20:8.1f} MiB (min {f['min'] / 2**20:.1f}, max {f['max'] / 2**20:.1f}, n {f['n']})")
            else:
                print(f"  {name:<18} {metric:<20} slope {f['slope_per_round']:+10.4f} /round{r2}; "
                      f"{f['first']:.0f} -> {f['last']:.0f} (min {f['min']:.0f}, max {f['max']:.0f}, n {f['n']})")


if __name__ == "__main__":
    main()
