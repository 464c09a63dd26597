"""Generates pipeline/src/test/resources/optim/adamw_reference.json from torch.optim.AdamW.

The Java test AdamWTorchReferenceTest replays the same initial values, gradients and per-step lr
factors through io.sparklora.optim.AdamW and compares the parameters after every step.
Everything runs in float64 so the comparison can be tight. Output is plain JSON (no pickle).

Usage: python3 bench/reference/adamw_reference.py [OUTPUT_JSON]
"""
import json
import os
import sys

import torch

BASE_LR = 0.01
BETAS = (0.9, 0.99)
EPS = 1e-8
STEPS = 6
# Schedule factor per step (warmup then decay), applied to each group's peak lr.
LR_FACTORS = [0.25, 0.5, 1.0, 0.8, 0.4, 0.1]
# Two groups as ParamGroup would build them: LoRA+-style B with 16x lr and no decay, A with decay.
GROUPS = [
    {"name": "lora_A", "lr_multiplier": 1.0, "weight_decay": 0.1, "params": {"a": (2, 3)}},
    {"name": "lora_B", "lr_multiplier": 16.0, "weight_decay": 0.0, "params": {"b": (3, 2), "c": (4,)}},
]


def main(out_path):
    gen = torch.Generator().manual_seed(1234)
    tensors, torch_groups = {}, []
    for g in GROUPS:
        params = []
        for name, shape in g["params"].items():
            t = torch.randn(shape, generator=gen, dtype=torch.float64)
            tensors[name] = torch.nn.Parameter(t)
            params.append(tensors[name])
        torch_groups.append({"params": params, "lr": BASE_LR * g["lr_multiplier"], "weight_decay": g["weight_decay"]})
    init = {n: p.detach().clone() for n, p in tensors.items()}
    peak = [tg["lr"] for tg in torch_groups]
    opt = torch.optim.AdamW(torch_groups, lr=BASE_LR, betas=BETAS, eps=EPS)

    grads = {n: [] for n in tensors}
    after = {n: [] for n in tensors}
    for step in range(STEPS):
        for tg, lr in zip(opt.param_groups, peak):
            tg["lr"] = lr * LR_FACTORS[step]
        for n, p in tensors.items():
            # Mixed magnitudes and a zero gradient on one step, to exercise bias correction and eps.
            g = torch.randn(p.shape, generator=gen, dtype=torch.float64) * (10.0 ** (step % 3 - 1))
            if n == "c" and step == 2:
                g = torch.zeros_like(g)
            p.grad = g.clone()
            grads[n].append(g.flatten().tolist())
        opt.step()
        for n, p in tensors.items():
            after[n].append(p.detach().flatten().tolist())

    doc = {
        "generator": "bench/reference/adamw_reference.py",
        "torch_version": torch.__version__,
        "base_lr": BASE_LR,
        "beta1": BETAS[0],
        "beta2": BETAS[1],
        "eps": EPS,
        "lr_factors": LR_FACTORS,
        "groups": [
            {
                "name": g["name"],
                "lr_multiplier": g["lr_multiplier"],
                "weight_decay": g["weight_decay"],
                "params": [
                    {
                        "name": n,
                        "shape": list(shape),
                        "init": init[n].flatten().tolist(),
                        "grads": grads[n],
                        "expected": after[n],
                    }
                    for n, shape in g["params"].items()
                ],
            }
            for g in GROUPS
        ],
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "pipeline", "src", "test", "resources", "optim", "adamw_reference.json")
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(default))
