"""PyTorch peer of io.sparklora.bench.TrainStepBenchmark: one training step of a GPT-2-small-shaped model.

Plain torch (no transformers package): GPT-2 blocks (pre-norm, fused c_attn, gelu_new MLP, tied lm
head), eager attention with a causal mask as Hugging Face's GPT2Attention computes it. LoRA puts
r=8, alpha=16 adapters on c_attn and freezes everything else; full fine-tuning trains every weight.
A step is loss.backward() + clip_grad_norm_(1.0) + AdamW.step() + zero_grad(), the same as the Java
benchmark. Reports tokens/s, model FLOPs utilisation against torch's own sgemm peak (same FLOP formula
as bench/src/main/java/io/sparklora/bench/ModelFlops.java) and peak RSS (ru_maxrss), as one JSON line.

Run one mode per process so peak RSS belongs to that mode:
    /usr/bin/python3 bench/reference/torch_train_step.py --mode lora --steps 5 --warmup 3
    /usr/bin/python3 bench/reference/torch_train_step.py --mode full --steps 5 --warmup 3
"""
import argparse
import json
import math
import platform
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoraLinear(nn.Module):
    """base(x) + scale · (x·Aᵀ)·Bᵀ with A ~ U(±1/√in), B = 0, as PEFT initialises it."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features).uniform_(-1 / math.sqrt(base.in_features), 1 / math.sqrt(base.in_features)))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale


class Block(nn.Module):
    def __init__(self, d, heads, seq):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.tril(torch.ones(seq, seq, dtype=torch.bool)).view(1, 1, seq, seq), persistent=False)

    def attn(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q = q.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        w = (q @ k.transpose(-1, -2)) / math.sqrt(c // self.heads)
        w = w.masked_fill(~self.mask[:, :, :t, :t], torch.finfo(w.dtype).min)
        y = F.softmax(w, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, vocab, d, layers, heads, context, seq):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.h = nn.ModuleList(Block(d, heads, seq) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * layers) if n.endswith("proj.weight") else 0.02)
            elif n.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(t))
        for blk in self.h:
            x = blk(x)
        return self.ln_f(x) @ self.wte.weight.t()   # tied lm head


def flops_per_token(vocab, d, layers, seq, mode, r):
    """Same formula as ModelFlops.java."""
    dense = 2.0 * (layers * (d * 3 * d + d * d + d * 4 * d + 4 * d * d) + vocab * d)
    attn = layers * 4.0 * seq * d
    if mode == "full":
        return 3 * dense + 3 * attn
    lora = layers * 2.0 * r * (d + 3 * d)
    return 2 * dense + 3 * attn + 3 * lora


def sgemm_peak(reps=5):
    best = {}
    for n in (1024, 1536, 2048):
        a, b = torch.rand(n, n), torch.rand(n, n)
        c = torch.empty(n, n)
        for _ in range(2):
            torch.mm(a, b, out=c)
        t = min(_timed(lambda: torch.mm(a, b, out=c)) for _ in range(reps))
        best[n] = 2.0 * n ** 3 / t / 1e9
    return best


def reset_peak_rss():
    """Resets VmHWM (the kernel's peak RSS, not ru_maxrss) so the timed steps' own peak can be read."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def vm_hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["lora", "full"], default="lora")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-sgemm", action="store_true")
    ap.add_argument("--out", default=None, help="append the JSON line to this file")
    ap.add_argument("--label", default="", help="free text copied into the JSON line")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    peaks = {} if a.no_sgemm else sgemm_peak()
    model = GPT2(a.vocab, a.d, a.layers, a.heads, max(1024, a.seq), a.seq)
    if a.mode == "lora":
        for p in model.parameters():
            p.requires_grad_(False)
        for blk in model.h:
            blk.c_attn = LoraLinear(blk.c_attn, a.rank, 2 * a.rank)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=torch.Generator().manual_seed(a.seed))
    x, y = ids[:, :-1], ids[:, 1:]

    times, losses = [], []
    timed_peak_reset = False
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            timed_peak_reset = reset_peak_rss()
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x).reshape(-1, a.vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        losses.append(round(loss.item(), 4))
        if s >= a.warmup:
            times.append(dt)
        print(f"step {s}{'' if s >= a.warmup else ' (warm-up)'}: {dt:.2f} s, loss {loss.item():.4f}", file=sys.stderr)

    tokens = a.batch * a.seq
    tps = tokens * len(times) / sum(times)
    fpt = flops_per_token(a.vocab, a.d, a.layers, a.seq, a.mode, a.rank)
    peak = max(peaks.values()) if peaks else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux reports kB; never reset
    timed_rss = vm_hwm() if timed_peak_reset else None
    res = {
        "impl": "torch", "label": a.label, "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "mode": a.mode, "batch": a.batch, "seq": a.seq, "rank": a.rank if a.mode == "lora" else 0,
        "trainable_parameters": sum(p.numel() for p in params),
        "warmup_steps": a.warmup, "timed_steps": a.steps, "step_seconds": [round(t, 3) for t in times],
        "tokens_per_second": round(tps, 1), "best_step_tokens_per_second": round(tokens / min(times), 1),
        "median_step_seconds": round(sorted(times)[len(times) // 2], 3), "model_flops_per_token": fpt,
        "achieved_gflops": round(fpt * tps / 1e9, 1),
        "sgemm_gflops_by_size": {str(k): round(v, 1) for k, v in peaks.items()},
        "sgemm_peak_gflops": round(peak, 1) if peak else None,
        "mfu": round(fpt * tps / 1e9 / peak, 4) if peak else None,
        "peak_rss_bytes": rss, "peak_rss_gib": round(rss / 2 ** 30, 3),
        "peak_rss_timed_steps_gib": round(timed_rss / 2 ** 30, 3) if timed_rss else None, "losses": losses,
    }
    line = json.dumps(res)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
