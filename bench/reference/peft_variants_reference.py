"""Independent PyTorch reference for PEFT's DoRA and VeRA adapters on the tiny GPT-2 and Llama models.

Generates pipeline/src/test/resources/reference/variants/<family>-<method>/ (family gpt2 | llama, method
dora | vera), which PeftVariantsReferenceTest loads through io.sparklora.adapters.PeftAdapterFormat onto the
base models of reference/{gpt2,llama}/ (written by hf_reference.py and only read here) and compares against:

    adapter_config.json        PEFT's config for the method (LoraConfig with use_dora: true, or VeraConfig)
    adapter_model.safetensors  float32 adapter tensors under PEFT's saved names, metadata {"format": "pt"}
    expected.json              input_ids, targets, the adapted modules, logits, loss and the gradients of the
                               loss w.r.t. every trainable adapter tensor (float64)

What is checked, and the definitions followed. PEFT itself (and transformers) cannot be installed on this
machine, so nothing is imported from it: the adapters are written here from PEFT's published definitions
(tuners/lora/dora.py DoraLinearLayer, tuners/lora/layer.py Linear, tuners/vera/layer.py Linear,
tuners/vera/model.py, utils/save_and_load.py); the base models are hf_reference.py's, imported, not copied.

  DoRA   peft_type LORA with use_dora: true. Per adapted layer, with W0 in the [out, in] view (GPT-2's Conv1D
         weight [in, out] transposed first: fan_in_fan_out), s = lora_alpha / r, A [r, in], B [out, r],
         magnitude m [out]:
             c = ||W0 + s·B·A|| per output feature (norm over the inputs), DETACHED (no gradient flows
                 through it, to A, B or anything else; PEFT detaches both B·A inside it and c itself)
             g = m / c
             y = x·W0ᵀ + bias + (g − 1) ⊙ (x·W0ᵀ) + g ⊙ s·(x·Aᵀ·Bᵀ)
         i.e. the merged weight W' = m ⊙ (W0 + s·B·A) / c. Gradients of A and B see c as a constant; m's is
         exact. Saved names: base_model.model.<module>.lora_A.weight, .lora_B.weight and
         .lora_magnitude_vector (no ".weight" suffix).
  VeRA   peft_type VERA. One frozen pair for the whole model, vera_A [r, max_in] and vera_B [max_out, r],
         sized to the largest input / output among the adapted layers; per layer λ_d [r] and λ_b [out]
         trainable; A_s = vera_A[:, :in], B_s = vera_B[:out, :]:
             y = x·W0ᵀ + bias + λ_b ⊙ ((λ_d ⊙ (x·A_sᵀ))·B_sᵀ)        (no alpha/r scale)
         Saved names: base_model.model.<module>.vera_lambda_b, .vera_lambda_d, and (save_projection: true)
         base_model.vera_A, base_model.vera_B. vera_A / vera_B are frozen: no gradient is written for them.

  Targets  GPT-2: c_attn (16→48), c_fc (16→64), mlp.c_proj (64→16; PEFT's suffix rule leaves attn.c_proj
           out), so VeRA slices both vera_A (in 16 of 64) and vera_B (out 48 and 16 of 64).
           Llama: q_proj (16→16), v_proj (16→8), gate_proj (16→24), down_proj (24→16).
  Values   Adapter tensors are non-trivial (B ≠ 0, λ_b ≠ 0, m perturbed away from ||W0|| and from
           ||W0 + s·BA||, λ_d away from d_initial), so a wrong formula, a missing transpose, a wrong slice
           or a gradient through DoRA's norm changes the compared values. No dropout (evaluation).
  Self-checks (asserted before writing): the adapter moves the logits by > 1e-2; PEFT's merged weights
           (DoRA: g ⊙ (W0 + s·BA), VeRA: W0 + (λ_b ⊙ B_s)(λ_d ⊙ A_s), transposed back for Conv1D) give the
           same logits to 1e-12; DoRA with m set to ||W0 + s·BA|| equals hf_reference's plain LoRA; VeRA
           with λ_b = 0 equals the base; and for DoRA the gradients of A and B with the norm left attached
           differ from the detached ones by > 1e-6 (written as "norm_detach_grad_effect"), so the fixture
           tells the two apart.

Every computation runs in float64 on the float32-rounded weights and adapter tensors, as hf_reference.py.

Usage: /usr/bin/python3 bench/reference/peft_variants_reference.py [REFERENCE_ROOT]
       (default REFERENCE_ROOT: pipeline/src/test/resources/reference; reads <root>/{gpt2,llama}/ and
       writes <root>/variants/)
Deterministic: fixed numpy seeds; rerunning on the same machine rewrites byte-identical files.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as hf  # noqa: E402  (the base models, batch and file writers)

DTYPE = hf.DTYPE
PFX = "base_model.model."

SETTINGS = {
    # family: targets, DoRA (r, lora_alpha), VeRA (r, d_initial, projection_prng_key), seed
    "gpt2": {"targets": ["c_attn", "c_fc", "mlp.c_proj"], "dora": (2, 4), "vera": (4, 0.25, 1234), "seed": 20640},
    "llama": {"targets": ["q_proj", "v_proj", "gate_proj", "down_proj"], "dora": (2, 6), "vera": (4, 0.5, 4321), "seed": 20641},
}


# ---- inputs -------------------------------------------------------------------------------------

def read_safetensors(path):
    """The tensors of a safetensors file (F32 only), in file order."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    out = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        assert info["dtype"] == "F32", f"{path}: {name} is {info['dtype']}"
        s, e = info["data_offsets"]
        out[name] = np.frombuffer(data[s:e], dtype="<f4").reshape(info["shape"]).copy()
    return out


def peft_matches(module, target):
    """PEFT's rule for a list of target names: the full name, or a dotted suffix of it."""
    return module == target or module.endswith("." + target)


def adapted_modules(family, weights, targets):
    """(module, in, out) for every linear layer the targets select, in model order."""
    mods = []
    for name, w in weights.items():
        if not name.endswith(".weight") or w.ndim != 2:
            continue
        module = name[: -len(".weight")]
        if module in ("transformer.wte", "transformer.wpe", "model.embed_tokens"):
            continue
        if any(peft_matches(module, t) for t in targets):
            fin, fout = w.shape if family == "gpt2" else w.shape[::-1]   # Conv1D [in, out]; nn.Linear [out, in]
            mods.append((module, fin, fout))
    for t in targets:
        assert any(peft_matches(m, t) for m, _, _ in mods), f"target {t} matches nothing"
    return mods


def out_in(family, w, module):
    """The base weight in the [out, in] view (PEFT's transpose(weight, fan_in_fan_out))."""
    w0 = w[module + ".weight"]
    return w0.T if family == "gpt2" else w0


# ---- adapters -----------------------------------------------------------------------------------

def to_params(tensors32, trainable):
    return {n: torch.tensor(v, dtype=DTYPE, requires_grad=trainable(n)) for n, v in tensors32.items()}


class Dora:
    """PEFT lora.Linear with use_dora: the extra term added to the base layer's output (bias included there)."""

    def __init__(self, family, w, tensors32, r, alpha, detach_norm=True):
        self.family, self.w, self.scaling, self.detach_norm = family, w, alpha / r, detach_norm
        self.params = to_params(tensors32, lambda n: True)

    def norm_and_scale(self, module):
        a = self.params[PFX + module + ".lora_A.weight"]
        b = self.params[PFX + module + ".lora_B.weight"]
        m = self.params[PFX + module + ".lora_magnitude_vector"]
        w0 = out_in(self.family, self.w, module)
        lora_weight = b @ a
        if self.detach_norm:
            lora_weight = lora_weight.detach()
        c = torch.linalg.norm(w0 + self.scaling * lora_weight, dim=1)
        if self.detach_norm:
            c = c.detach()
        return c, m / c

    def delta(self, module, x):
        a = self.params.get(PFX + module + ".lora_A.weight")
        if a is None:
            return 0.0
        b = self.params[PFX + module + ".lora_B.weight"]
        _, g = self.norm_and_scale(module)
        base = x @ out_in(self.family, self.w, module).T        # without bias
        return (g - 1) * base + g * (x @ a.T @ b.T) * self.scaling

    def merged(self, w):
        """PEFT's merge: W' = g ⊙ (W0 + s·B·A) per output row of [out, in]; back to Conv1D's [in, out]."""
        out = dict(w)
        for name in self.params:
            if name.endswith(".lora_A.weight"):
                module = name[len(PFX): -len(".lora_A.weight")]
                a = self.params[name].detach()
                b = self.params[PFX + module + ".lora_B.weight"].detach()
                _, g = self.norm_and_scale(module)
                wm = g.detach()[:, None] * (out_in(self.family, w, module) + self.scaling * (b @ a))
                out[module + ".weight"] = wm.T if self.family == "gpt2" else wm
        return out


class Vera:
    """PEFT vera.Linear: λ_b ⊙ ((λ_d ⊙ (x·A_sᵀ))·B_sᵀ) on the sliced shared pair."""

    def __init__(self, family, tensors32):
        self.family = family
        self.params = to_params(tensors32, lambda n: "vera_lambda_" in n)   # vera_A, vera_B frozen
        self.vera_a = self.params["base_model.vera_A"]
        self.vera_b = self.params["base_model.vera_B"]

    def sliced(self, module, fin):
        lb = self.params[PFX + module + ".vera_lambda_b"]
        return self.vera_a[:, :fin], self.vera_b[: lb.shape[0], :]

    def delta(self, module, x):
        lb = self.params.get(PFX + module + ".vera_lambda_b")
        if lb is None:
            return 0.0
        ld = self.params[PFX + module + ".vera_lambda_d"]
        a_s, b_s = self.sliced(module, x.shape[-1])
        return lb * ((ld * (x @ a_s.T)) @ b_s.T)

    def merged(self, w):
        """PEFT's get_delta_weight: (λ_b ⊙ B_s)(λ_d ⊙ A_s) [out, in], transposed for Conv1D; added to W0."""
        out = dict(w)
        for name in self.params:
            if name.endswith(".vera_lambda_b"):
                module = name[len(PFX): -len(".vera_lambda_b")]
                fin = out_in(self.family, w, module).shape[1]
                a_s, b_s = self.sliced(module, fin)
                lb, ld = self.params[name].detach(), self.params[PFX + module + ".vera_lambda_d"].detach()
                dw = (lb[:, None] * b_s) @ (ld[:, None] * a_s)
                out[module + ".weight"] = w[module + ".weight"] + (dw.T if self.family == "gpt2" else dw)
        return out


def dora_tensors(family, w, mods, r, alpha, rng):
    """A, B ~ N(0, 0.2²); m = ||W0|| ⊙ (1 + N(0, 0.2²)): away from ||W0|| and from ||W0 + s·BA||."""
    t = {}
    for module, fin, fout in mods:
        t[PFX + module + ".lora_A.weight"] = (rng.standard_normal((r, fin)) * 0.2).astype(np.float32)
        t[PFX + module + ".lora_B.weight"] = (rng.standard_normal((fout, r)) * 0.2).astype(np.float32)
        norm = torch.linalg.norm(out_in(family, w, module), dim=1).numpy()
        t[PFX + module + ".lora_magnitude_vector"] = (norm * (1 + 0.2 * rng.standard_normal(fout))).astype(np.float32)
    return t


def vera_tensors(mods, r, d_initial, rng):
    """The shared pair as PEFT draws it (kaiming-uniform, bound √(6/fan_in)); λ_b ~ N(0, 0.5²), λ_d = d_initial + N(0, 0.1²)."""
    max_in, max_out = max(m[1] for m in mods), max(m[2] for m in mods)
    t = {}
    for module, fin, fout in mods:
        t[PFX + module + ".vera_lambda_b"] = (rng.standard_normal(fout) * 0.5).astype(np.float32)
        t[PFX + module + ".vera_lambda_d"] = (d_initial + 0.1 * rng.standard_normal(r)).astype(np.float32)
    bound_a, bound_b = np.sqrt(6.0 / max_in), np.sqrt(6.0 / r)
    t["base_model.vera_A"] = rng.uniform(-bound_a, bound_a, (r, max_in)).astype(np.float32)
    t["base_model.vera_B"] = rng.uniform(-bound_b, bound_b, (max_out, r)).astype(np.float32)
    return t


# ---- configs ------------------------------------------------------------------------------------

def dora_config(family, targets, r, alpha):
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": None,
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": targets,
        "fan_in_fan_out": family == "gpt2",
        "bias": "none",
        "use_rslora": False,
        "use_dora": True,
        "modules_to_save": None,
        "init_lora_weights": True,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "inference_mode": True,
    }


def vera_config(family, targets, r, d_initial, prng_key):
    return {
        "peft_type": "VERA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": None,
        "r": r,
        "target_modules": targets,
        "projection_prng_key": prng_key,
        "save_projection": True,
        "vera_dropout": 0.0,
        "d_initial": d_initial,
        "fan_in_fan_out": family == "gpt2",
        "bias": "none",
        "modules_to_save": None,
        "init_weights": True,
        "layers_to_transform": None,
        "layers_pattern": None,
        "inference_mode": True,
    }


# ---- build --------------------------------------------------------------------------------------

def loss_of(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def build(family, method, root):
    src = os.path.join(root, family)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    weights32 = read_safetensors(os.path.join(src, "model.safetensors"))
    w = {k: torch.tensor(v, dtype=DTYPE) for k, v in weights32.items()}
    fwd = hf.gpt2_forward if family == "gpt2" else hf.llama_forward
    s = SETTINGS[family]
    mods = adapted_modules(family, weights32, s["targets"])
    ids_np, targets_np = hf.batch(cfg["vocab_size"], s["seed"])
    ids, targets = torch.tensor(ids_np), torch.tensor(targets_np)
    rng = np.random.Generator(np.random.PCG64(s["seed"] + (100 if method == "dora" else 200)))
    no_adapter = hf.Lora({}, 1, 1)
    base_logits = fwd(cfg, w, no_adapter, ids)
    extra = {}

    if method == "dora":
        r, alpha = s["dora"]
        tensors32 = dora_tensors(family, w, mods, r, alpha, rng)
        adapter = Dora(family, w, tensors32, r, alpha)
        config = dora_config(family, s["targets"], r, alpha)
    else:
        r, d_initial, key = s["vera"]
        tensors32 = vera_tensors(mods, r, d_initial, rng)
        adapter = Vera(family, tensors32)
        config = vera_config(family, s["targets"], r, d_initial, key)

    logits = fwd(cfg, w, adapter, ids)
    loss = loss_of(logits, targets)
    names = [n for n, p in adapter.params.items() if p.requires_grad]
    grads = torch.autograd.grad(loss, [adapter.params[n] for n in names])
    logits = logits.detach()

    # ---- self-checks of the reference ----
    effect = (logits - base_logits).abs().max().item()
    assert effect > 1e-2, f"{family}-{method}: the adapter barely changes the logits ({effect})"
    merged_diff = (fwd(cfg, adapter.merged(w), no_adapter, ids) - logits).abs().max().item()
    assert merged_diff < 1e-12, f"{family}-{method}: merged weights disagree with the unmerged path by {merged_diff}"
    if method == "dora":
        # with m = ||W0 + s·BA||, g = 1 and DoRA is plain LoRA (hf_reference.Lora)
        at_norm = dict(tensors32)
        lora32 = {}
        for module, _, _ in mods:
            c, _ = adapter.norm_and_scale(module)
            at_norm[PFX + module + ".lora_magnitude_vector"] = c.numpy()
            for k in ("lora_A.weight", "lora_B.weight"):
                lora32[PFX + module + "." + k] = tensors32[PFX + module + "." + k]
        with torch.no_grad():
            d = (fwd(cfg, w, Dora(family, w, at_norm, r, alpha), ids) - fwd(cfg, w, hf.Lora(lora32, r, alpha), ids)).abs().max().item()
        assert d < 1e-12, f"{family}-dora: with m = ||W0 + sBA|| DoRA differs from LoRA by {d}"
        # the detached norm is visible in the A and B gradients (so the fixture tells the two apart)
        attached = Dora(family, w, tensors32, r, alpha, detach_norm=False)
        g_att = torch.autograd.grad(loss_of(fwd(cfg, w, attached, ids), targets), [attached.params[n] for n in names])
        detach_effect = {n: (ga - gd).abs().max().item() for n, ga, gd in zip(names, g_att, grads)}
        for n, v in detach_effect.items():
            if "lora_magnitude_vector" in n:
                assert v < 1e-12, f"{n}: m's gradient must not depend on the detach ({v})"
            else:
                assert v > 1e-6, f"{n}: detaching the norm changes the gradient by only {v}"
        extra["norm_detach_grad_effect"] = max(detach_effect.values())
    else:
        zero = {n: (np.zeros_like(v) if "vera_lambda_b" in n else v) for n, v in tensors32.items()}
        with torch.no_grad():
            d = (fwd(cfg, w, Vera(family, zero), ids) - base_logits).abs().max().item()
        assert d == 0.0, f"{family}-vera: λ_b = 0 should give the base model, differs by {d}"
        for n, gr in zip(names, grads):
            assert gr.abs().max().item() > 1e-6, f"{n}: gradient is ~0"

    out = os.path.join(root, "variants", f"{family}-{method}")
    os.makedirs(out, exist_ok=True)
    hf.write_json(os.path.join(out, "adapter_config.json"), config)
    hf.write_safetensors(os.path.join(out, "adapter_model.safetensors"), tensors32)
    doc = {
        "generator": "bench/reference/peft_variants_reference.py",
        "torch_version": torch.__version__,
        "base_model": f"../../{family}",
        "method": method,
        "note": "float64 evaluation on the float32 base and adapter tensors; logits [B, T, V]; targets aligned with "
                "positions, -100 ignored; loss is the mean over counted targets; grads are d(loss)/d(tensor) for "
                "every trainable adapter tensor, keyed by PEFT name, same shapes as in adapter_model.safetensors "
                "(VeRA's vera_A / vera_B are frozen and have none)",
        "modules": [m for m, _, _ in mods],
        "input_ids": ids_np.tolist(),
        "targets": targets_np.tolist(),
        "loss": loss.item(),
        "adapter_effect_max_abs": effect,
        **extra,
        "logits": logits.tolist(),
        "grads": {n: g.tolist() for n, g in zip(names, grads)},
    }
    hf.write_json(os.path.join(out, "expected.json"), doc, one_line_values=True)
    print(f"{family}-{method}: loss {loss.item():.12f}, adapter effect on logits {effect:.3g}, "
          f"{len(mods)} modules, files in {out}")


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "pipeline", "src", "test", "resources", "reference")
    torch.set_num_threads(1)   # fixed reduction order, so reruns are byte-identical
    for family in ("gpt2", "llama"):
        for method in ("dora", "vera"):
            build(family, method, root)


if __name__ == "__main__":
    main()
