"""Independent PyTorch reference for GPT2LMHeadModel and the Llama family (LlamaForCausalLM with and without
rope_scaling, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM) with PEFT LoRA.

Generates pipeline/src/test/resources/reference/<family>/ (gpt2, llama, llama3, llama-linear, llama-dynamic,
mistral, qwen2, qwen3, phi3), which HuggingFaceReferenceTest loads
into io.sparklora.model.TransformerLM and compares against:

    config.json                Hugging Face model config
    model.safetensors          float32 weights under Hugging Face names
    adapter_config.json        PEFT LoraConfig
    adapter_model.safetensors  float32 LoRA tensors under PEFT names
    expected.json              input_ids, targets, logits, loss and LoRA gradients (float64)

The models are written here from the published architecture definitions (transformers' modeling_gpt2.py,
modeling_llama.py, modeling_mistral.py, modeling_qwen2.py, modeling_qwen3.py, modeling_phi3.py and
modeling_rope_utils.py; PEFT's lora.Linear); nothing is imported from transformers or peft, which this
machine does not have. Every computation runs in float64 on the float32-rounded weights, so the Java
side can be held to ~1e-9.

Conventions reproduced (the points where a re-implementation usually goes wrong):
  GPT-2  Conv1D weights [in, out] (y = x @ W + b); fused c_attn split q|k|v along the output;
         learned absolute positions added to token embeddings; pre-LN blocks with a final ln_f;
         gelu_new = 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))); scores / sqrt(head_dim);
         lm_head tied to wte (logits = h @ wte.T).
  Llama  nn.Linear weights [out, in] (y = x @ W.T); RMSNorm x * rsqrt(mean(x^2) + eps) * w;
         rotary in the rotate_half convention: inv_freq = 1/theta^(arange(0, D, 2)/D) in float32,
         angles = pos * inv_freq in float32, emb = cat(freqs, freqs), q*cos + rotate_half(q)*sin with
         rotate_half([x1, x2]) = [-x2, x1]; grouped-query attention where kv head j serves query heads
         j*G .. j*G+G-1 (repeat_kv = repeat_interleave over the head dimension); SwiGLU
         down(silu(gate(x)) * up(x)); untied lm_head.
  Family Qwen2: q/k/v_proj with bias, o_proj without. Qwen3: RMSNorm (weight [D], rms_norm_eps) over each head
         of q and k, before the rotation; no biases. Phi-3: qkv_proj rows are [q (H*D) | k (Hkv*D) | v (Hkv*D)],
         gate_up_proj rows [gate (F) | up (F)]. Mistral: Llama within its sliding window (the batch is
         shorter than the window). head_dim may differ from hidden/heads (q_proj out = H*D, o_proj in = H*D).
  Rope   scaling as modeling_rope_utils: linear (inv_freq / factor), dynamic (NTK base from the sequence
         length, when past max_position_embeddings) and llama3 (per-wavelength divide / keep / smooth).
  LoRA   (PEFT) delta = (dropout(x) @ A.T @ B.T) * lora_alpha / r with A [r, in], B [out, r], also for
         GPT-2's Conv1D (fan_in_fan_out only changes how a merge transposes the delta).
         Every linear layer adds adapter.delta(module, x) (0.0 where the adapter has no tensors), so other
         adapters with the same delta(module, x) interface reuse these models on any target
         (peft_variants_reference.py: DoRA and VeRA, also on the MLP layers).
  Loss   mean token cross entropy over targets != -100. Targets are already aligned with the positions
         (targets[b, t] is the token that should follow input_ids[b, t]), i.e. what HF computes after its
         internal label shift; the Java TokenBatch holds them the same way.

Deliberate float64 choice: transformers computes the rotary cos/sin tables in float32 and casts them
to the model dtype (and, in eager Llama attention/RMSNorm, upcasts to float32). Here only inv_freq and
the angles are float32 (they decide which angle is used); cos/sin, norms and softmax are evaluated in
float64, which is the exact value of the same formula. The effect of using float32 cos/sin instead is
measured and written to expected.json as "rope_fp32_tables_logit_shift" for information.

Usage: /usr/bin/python3 bench/reference/hf_reference.py [OUTPUT_ROOT]
       (default OUTPUT_ROOT: pipeline/src/test/resources/reference)
Deterministic: fixed numpy seeds; rerunning rewrites byte-identical files.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPE = torch.float64
WEIGHT_STD = 0.2

GPT2_CONFIG = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "vocab_size": 50,
    "n_embd": 16,
    "n_layer": 2,
    "n_head": 2,
    "n_positions": 32,
    "n_ctx": 32,
    "n_inner": None,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-05,
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
    "scale_attn_weights": True,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
}

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 60,
    "hidden_size": 16,
    "intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 32,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
}

def _llama_like(model_type, arch_class, **over):
    c = dict(LLAMA_CONFIG)
    c["architectures"] = [arch_class]
    c["model_type"] = model_type
    c.update(over)
    return c


# The Llama family's variations, each exercising what its transformers definition adds to Llama's block.
FAMILY_CONFIGS = {
    # Llama 3.1/3.2's rope rule, with D = 8 != hidden/heads = 4 and the head tied to the embedding (Llama 3.2 1B).
    # inv_freq = [1, 0.1, 0.01, 0.001]: wavelengths 6.3 (kept, < 64/4), 62.8 (smoothed), 628 and 6283 (divided).
    "llama3": _llama_like("llama", "LlamaForCausalLM", head_dim=8, tie_word_embeddings=True, max_position_embeddings=128,
                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                          bos_token_id=1, eos_token_id=[2, 3]),
    "llama-linear": _llama_like("llama", "LlamaForCausalLM", rope_scaling={"type": "linear", "factor": 4.0}),
    # dynamic NTK scaling changes the base only past max_position_embeddings: the 7-token batch is past 4
    "llama-dynamic": _llama_like("llama", "LlamaForCausalLM", max_position_embeddings=4,
                                 rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
    "mistral": _llama_like("mistral", "MistralForCausalLM", sliding_window=16, rope_theta=1000000.0),
    "qwen2": _llama_like("qwen2", "Qwen2ForCausalLM", tie_word_embeddings=True, use_sliding_window=False,
                         sliding_window=4, max_window_layers=2, rope_theta=1000000.0),
    "qwen3": _llama_like("qwen3", "Qwen3ForCausalLM", head_dim=8, tie_word_embeddings=True, attention_bias=False,
                         use_sliding_window=False, sliding_window=None, rope_theta=1000000.0),
    "phi3": _llama_like("phi3", "Phi3ForCausalLM", rope_scaling=None, sliding_window=32, resid_pdrop=0.0,
                        embd_pdrop=0.0, attention_dropout=0.0, original_max_position_embeddings=32),
}
for _c in FAMILY_CONFIGS.values():
    _c.pop("mlp_bias", None) if _c["model_type"] != "llama" else None
    if _c["model_type"] in ("qwen2", "phi3"):
        _c.pop("attention_bias", None)

# PEFT's default target modules for each model_type
DEFAULT_TARGETS = {"llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"],
                   "qwen3": ["q_proj", "v_proj"], "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]}

GPT2_LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["c_attn"], "fan_in_fan_out": True}
LLAMA_LORA = {"r": 4, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], "fan_in_fan_out": False}

BATCH, SEQ = 2, 7
# Positions whose target is ignored (-100): a prompt token, a middle one and a trailing pad.
IGNORED = [(0, 0), (0, 3), (1, 2), (1, 6)]


# ---- weights ------------------------------------------------------------------------------------

def gpt2_shapes(c):
    d, f, v, p = c["n_embd"], 4 * c["n_embd"], c["vocab_size"], c["n_positions"]
    s = {"transformer.wte.weight": (v, d), "transformer.wpe.weight": (p, d)}
    for i in range(c["n_layer"]):
        h = f"transformer.h.{i}."
        s.update({
            h + "ln_1.weight": (d,), h + "ln_1.bias": (d,),
            h + "attn.c_attn.weight": (d, 3 * d), h + "attn.c_attn.bias": (3 * d,),
            h + "attn.c_proj.weight": (d, d), h + "attn.c_proj.bias": (d,),
            h + "ln_2.weight": (d,), h + "ln_2.bias": (d,),
            h + "mlp.c_fc.weight": (d, f), h + "mlp.c_fc.bias": (f,),
            h + "mlp.c_proj.weight": (f, d), h + "mlp.c_proj.bias": (d,),
        })
    s.update({"transformer.ln_f.weight": (d,), "transformer.ln_f.bias": (d,)})
    return s


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def llama_shapes(c):
    """The Llama family's tensors; Qwen2 adds q/k/v biases, Qwen3 q_norm/k_norm, Phi-3 fuses qkv and gate_up."""
    d, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    mt = c["model_type"]
    hd = head_dim(c)
    qd, kvd = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    s = {"model.embed_tokens.weight": (v, d)}
    for i in range(c["num_hidden_layers"]):
        h = f"model.layers.{i}."
        s[h + "input_layernorm.weight"] = (d,)
        if mt == "phi3":
            s[h + "self_attn.qkv_proj.weight"] = (qd + 2 * kvd, d)
        else:
            s[h + "self_attn.q_proj.weight"] = (qd, d)
            if mt == "qwen2":
                s[h + "self_attn.q_proj.bias"] = (qd,)
            s[h + "self_attn.k_proj.weight"] = (kvd, d)
            if mt == "qwen2":
                s[h + "self_attn.k_proj.bias"] = (kvd,)
            s[h + "self_attn.v_proj.weight"] = (kvd, d)
            if mt == "qwen2":
                s[h + "self_attn.v_proj.bias"] = (kvd,)
        s[h + "self_attn.o_proj.weight"] = (d, qd)
        if mt == "qwen3":
            s[h + "self_attn.q_norm.weight"] = (hd,)
            s[h + "self_attn.k_norm.weight"] = (hd,)
        s[h + "post_attention_layernorm.weight"] = (d,)
        if mt == "phi3":
            s[h + "mlp.gate_up_proj.weight"] = (2 * f, d)
        else:
            s[h + "mlp.gate_proj.weight"] = (f, d)
            s[h + "mlp.up_proj.weight"] = (f, d)
        s[h + "mlp.down_proj.weight"] = (d, f)
    s["model.norm.weight"] = (d,)
    if not c.get("tie_word_embeddings", False):
        s["lm_head.weight"] = (v, d)
    return s


def random_weights(shapes, seed):
    """float32 weights: matrices and biases N(0, 0.2^2), norm scales 1 + N(0, 0.2^2)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = {}
    for name, shape in shapes.items():
        x = rng.standard_normal(shape) * WEIGHT_STD
        is_norm_scale = len(shape) == 1 and ("norm" in name or name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")))
        if is_norm_scale:
            x = x + 1.0
        out[name] = x.astype(np.float32)
    return out


def lora_modules(family, cfg, lora):
    mods = []
    if family == "gpt2":
        d = cfg["n_embd"]
        for i in range(cfg["n_layer"]):
            mods.append((f"transformer.h.{i}.attn.c_attn", d, 3 * d))
    else:
        for module, fin, fout in linear_modules(cfg):
            if module.rsplit(".", 1)[1] in lora["target_modules"]:
                mods.append((module, fin, fout))
    return mods


def linear_modules(cfg):
    """(module, in, out) of every linear layer of a Llama-family block, in model order."""
    d, f = cfg["hidden_size"], cfg["intermediate_size"]
    hd = head_dim(cfg)
    qd, kvd = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    out = []
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        if cfg["model_type"] == "phi3":
            out.append((p + "self_attn.qkv_proj", d, qd + 2 * kvd))
        else:
            out += [(p + "self_attn.q_proj", d, qd), (p + "self_attn.k_proj", d, kvd), (p + "self_attn.v_proj", d, kvd)]
        out.append((p + "self_attn.o_proj", qd, d))
        if cfg["model_type"] == "phi3":
            out.append((p + "mlp.gate_up_proj", d, 2 * f))
        else:
            out += [(p + "mlp.gate_proj", d, f), (p + "mlp.up_proj", d, f)]
        out.append((p + "mlp.down_proj", f, d))
    return out


def random_lora(mods, r, seed):
    """PEFT-named float32 LoRA tensors; B is non-zero (a trained adapter) so the path is exercised."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = {}
    for module, fin, fout in mods:
        out[f"base_model.model.{module}.lora_A.weight"] = (rng.standard_normal((r, fin)) * WEIGHT_STD).astype(np.float32)
        out[f"base_model.model.{module}.lora_B.weight"] = (rng.standard_normal((fout, r)) * WEIGHT_STD).astype(np.float32)
    return out


# ---- models -------------------------------------------------------------------------------------

class Lora:
    """PEFT lora.Linear's extra term for the adapted modules (dropout is off at evaluation)."""

    def __init__(self, tensors, r, alpha):
        self.scaling = alpha / r
        self.params = {}
        for name, value in tensors.items():
            self.params[name] = torch.tensor(value, dtype=DTYPE, requires_grad=True)

    def delta(self, module, x):
        a = self.params.get(f"base_model.model.{module}.lora_A.weight")
        if a is None:
            return 0.0
        b = self.params[f"base_model.model.{module}.lora_B.weight"]
        return (x @ a.T @ b.T) * self.scaling


def causal_mask(t):
    return torch.tril(torch.ones(t, t, dtype=torch.bool))


def attention(q, k, v):
    """q, k, v [B, H, T, D] -> [B, H, T, D]; scaled dot product with a causal mask."""
    t, d = q.shape[-2], q.shape[-1]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    scores = torch.where(causal_mask(t), scores, torch.tensor(torch.finfo(DTYPE).min, dtype=DTYPE))
    return F.softmax(scores, dim=-1) @ v


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def conv1d(x, w, b):
    """transformers.pytorch_utils.Conv1D: weight [in, out]."""
    return x @ w + b


def gpt2_forward(cfg, w, lora, ids):
    bsz, t = ids.shape
    c, nh = cfg["n_embd"], cfg["n_head"]
    hd = c // nh
    eps = cfg["layer_norm_epsilon"]
    h = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][torch.arange(t)][None]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        a = F.layer_norm(h, (c,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = conv1d(a, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"]) + lora.delta(p + "attn.c_attn", a)
        q, k, v = qkv.split(c, dim=2)
        q, k, v = (z.reshape(bsz, t, nh, hd).transpose(1, 2) for z in (q, k, v))
        y = attention(q, k, v).transpose(1, 2).reshape(bsz, t, c)
        h = h + conv1d(y, w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"]) + lora.delta(p + "attn.c_proj", y)
        m = F.layer_norm(h, (c,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = gelu_new(conv1d(m, w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"]) + lora.delta(p + "mlp.c_fc", m))
        h = h + conv1d(m, w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"]) + lora.delta(p + "mlp.c_proj", m)
    h = F.layer_norm(h, (c,), w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    return h @ w["transformer.wte.weight"].T   # tied lm_head


def rms_norm(x, weight, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def inv_freq_for(cfg, hd, t):
    """transformers' rope init functions (modeling_rope_utils), in their float32 order of operations.

    Python's scalar / tensor is tensor.reciprocal() * scalar in torch; it is written the same way here.
    """
    theta = cfg.get("rope_theta", 10000.0)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    exponents = torch.arange(0, hd, 2, dtype=torch.int64).float() / hd
    if kind == "dynamic":
        orig = cfg["max_position_embeddings"]
        seq_len = torch.tensor(t)       # transformers passes max(position_ids) + 1, a tensor
        if t > orig:
            base = theta * ((rs["factor"] * seq_len / orig) - (rs["factor"] - 1)) ** (hd / (hd - 2))
        else:
            base = theta
        return 1.0 / (base ** exponents)
    inv_freq = 1.0 / (theta ** exponents)
    if kind == "default":
        return inv_freq
    if kind == "linear":
        return inv_freq / rs["factor"]
    if kind == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled)
    raise ValueError(kind)


def rope_tables(head_dim, theta, t, fp32_tables=False, cfg=None):
    inv_freq = inv_freq_for(cfg or {"rope_theta": theta}, head_dim, t)                                   # float32
    assert inv_freq.dtype == torch.float32
    pos = torch.arange(t, dtype=torch.int64).float()
    freqs = pos[:, None] @ inv_freq[None, :]                                                            # float32
    emb = torch.cat((freqs, freqs), dim=-1)
    if fp32_tables:   # what transformers does: cos/sin in float32, then cast to the model dtype
        return emb.cos().to(DTYPE), emb.sin().to(DTYPE)
    return emb.to(DTYPE).cos(), emb.to(DTYPE).sin()


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def llama_forward(cfg, w, lora, ids, fp32_rope_tables=False):
    """LlamaForCausalLM and its variations: MistralForCausalLM (as Llama within the window), Qwen2 (q/k/v biases),
    Qwen3 (RMSNorm over each head of q and k, before the rotation), Phi3 (fused qkv_proj and gate_up_proj)."""
    bsz, t = ids.shape
    c, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    mt = cfg["model_type"]
    hd = head_dim(cfg)
    eps = cfg["rms_norm_eps"]
    window = cfg.get("sliding_window") if mt in ("mistral", "phi3") or cfg.get("use_sliding_window") else None
    assert window is None or t <= window, "the reference implements full attention only"
    cos, sin = rope_tables(hd, cfg["rope_theta"], t, fp32_rope_tables, cfg)   # [T, D], broadcast over B, H

    def lin(name, x):
        y = x @ w[name + ".weight"].T
        if name + ".bias" in w:
            y = y + w[name + ".bias"]
        return y + lora.delta(name, x)

    h = w["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        if mt == "phi3":
            qkv = lin(p + "self_attn.qkv_proj", a)
            q, k, v = qkv[..., :nh * hd], qkv[..., nh * hd:(nh + nkv) * hd], qkv[..., (nh + nkv) * hd:]
        else:
            q, k, v = lin(p + "self_attn.q_proj", a), lin(p + "self_attn.k_proj", a), lin(p + "self_attn.v_proj", a)
        q = q.reshape(bsz, t, nh, hd)
        k = k.reshape(bsz, t, nkv, hd)
        if mt == "qwen3":
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = v.reshape(bsz, t, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        y = attention(q, k, v).transpose(1, 2).reshape(bsz, t, nh * hd)
        h = h + lin(p + "self_attn.o_proj", y)
        m = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        if mt == "phi3":
            gu = lin(p + "mlp.gate_up_proj", m)
            g, u = gu.chunk(2, dim=-1)
        else:
            g, u = lin(p + "mlp.gate_proj", m), lin(p + "mlp.up_proj", m)
        z = F.silu(g) * u
        h = h + lin(p + "mlp.down_proj", z)
    h = rms_norm(h, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return h @ head.T


# ---- self-checks of the reference itself --------------------------------------------------------

def self_checks():
    x = torch.linspace(-4, 4, 101, dtype=DTYPE)
    assert torch.allclose(gelu_new(x), F.gelu(x, approximate="tanh"), atol=1e-14, rtol=0)
    # rotate_half rotates the pair (x_i, x_{i+D/2}) by the angle: a 2-D rotation, norm preserving.
    q = torch.randn(1, 1, 5, 8, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    cos, sin = rope_tables(8, 10000.0, 5)
    r = q * cos + rotate_half(q) * sin
    assert torch.allclose(r.norm(dim=-1), q.norm(dim=-1), atol=1e-12)
    # position 0 is the identity
    assert torch.equal(r[..., 0, :], q[..., 0, :])
    # relative-position property: <R_m q, R_n k> depends only on m - n
    k = torch.randn(1, 1, 5, 8, dtype=DTYPE, generator=torch.Generator().manual_seed(1))
    qq = q[..., :1, :].expand(1, 1, 5, 8)
    kk = k[..., :1, :].expand(1, 1, 5, 8)
    rq, rk = qq * cos + rotate_half(qq) * sin, kk * cos + rotate_half(kk) * sin
    assert abs(float((rq[..., 3, :] * rk[..., 1, :]).sum() - (rq[..., 2, :] * rk[..., 0, :]).sum())) < 1e-6


def merged_check(family, cfg, w, lora, ids, logits):
    """PEFT merge semantics: W + s*B@A ([out,in]), transposed for fan_in_fan_out Conv1D, gives the same logits."""
    merged = dict(w)
    for name in lora.params:
        if not name.endswith("lora_A.weight"):
            continue
        module = name[len("base_model.model."):-len(".lora_A.weight")]
        a, b = lora.params[name].detach(), lora.params[name.replace("lora_A", "lora_B")].detach()
        delta = (b @ a) * lora.scaling
        merged[module + ".weight"] = w[module + ".weight"] + (delta.T if family == "gpt2" else delta)
    empty = Lora({}, 1, 1)
    fwd = gpt2_forward if family == "gpt2" else llama_forward
    diff = (fwd(cfg, merged, empty, ids) - logits).abs().max().item()
    assert diff < 1e-12, f"{family}: merged weights disagree with the unmerged LoRA path by {diff}"


# ---- files --------------------------------------------------------------------------------------

def write_safetensors(path, tensors):
    """safetensors: u64 LE header length, JSON header (space-padded to 8 bytes), raw LE data in order."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_json(path, doc, one_line_values=False):
    with open(path, "w") as f:
        if one_line_values:   # one top-level key per line: diffable yet compact
            f.write("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()) + "\n}\n")
        else:
            f.write(json.dumps(doc, indent=2) + "\n")


def batch(vocab, seed):
    rng = np.random.Generator(np.random.PCG64(seed))
    block = rng.integers(0, vocab, size=(BATCH, SEQ + 1))
    ids = block[:, :SEQ].copy()
    targets = block[:, 1:].copy()
    for b, t in IGNORED:
        targets[b, t] = -100
    return ids, targets


def build(family, out_root):
    if family in ("gpt2", "llama"):
        cfg = GPT2_CONFIG if family == "gpt2" else LLAMA_CONFIG
        lcfg = GPT2_LORA if family == "gpt2" else LLAMA_LORA
        seed = 20240 if family == "gpt2" else 20241
    else:
        cfg = FAMILY_CONFIGS[family]
        lcfg = {"r": 4, "lora_alpha": 16, "target_modules": DEFAULT_TARGETS[cfg["model_type"]], "fan_in_fan_out": False}
        seed = 20250 + 10 * list(FAMILY_CONFIGS).index(family)
    weights32 = random_weights(gpt2_shapes(cfg) if family == "gpt2" else llama_shapes(cfg), seed)
    lora32 = random_lora(lora_modules(family, cfg, lcfg), lcfg["r"], seed + 100)
    ids_np, targets_np = batch(cfg["vocab_size"], seed + 200)

    w = {k: torch.tensor(v, dtype=DTYPE) for k, v in weights32.items()}   # float32 values, exactly, in float64
    lora = Lora(lora32, lcfg["r"], lcfg["lora_alpha"])
    ids, targets = torch.tensor(ids_np), torch.tensor(targets_np)
    fwd = gpt2_forward if family == "gpt2" else llama_forward

    logits = fwd(cfg, w, lora, ids)                                          # [B, T, V]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    names = list(lora.params)
    grads = torch.autograd.grad(loss, [lora.params[n] for n in names])
    logits = logits.detach()

    # Sanity: the adapter changes the output, the merged form agrees, and the float32 HF rope tables
    # would move the logits by only float32 rounding.
    base = fwd(cfg, w, Lora({}, 1, 1), ids)
    lora_effect = (logits - base).abs().max().item()
    assert lora_effect > 1e-2, f"{family}: LoRA barely changes the logits ({lora_effect})"
    merged_check(family, cfg, w, lora, ids, logits)
    doc_extra = {}
    if family != "gpt2":
        with torch.no_grad():
            shift = (llama_forward(cfg, w, lora, ids, fp32_rope_tables=True) - logits).abs().max().item()
        assert shift < 1e-5
        doc_extra["rope_fp32_tables_logit_shift"] = shift

    out = os.path.join(out_root, family)
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "config.json"), cfg)
    write_safetensors(os.path.join(out, "model.safetensors"), weights32)
    write_json(os.path.join(out, "adapter_config.json"), {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": None,
        "r": lcfg["r"],
        "lora_alpha": lcfg["lora_alpha"],
        "lora_dropout": 0.0,
        "target_modules": lcfg["target_modules"],
        "fan_in_fan_out": lcfg["fan_in_fan_out"],
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": True,
    })
    write_safetensors(os.path.join(out, "adapter_model.safetensors"), lora32)
    doc = {
        "generator": "bench/reference/hf_reference.py",
        "torch_version": torch.__version__,
        "note": "float64 evaluation on the float32 weights; logits [B, T, V]; targets aligned with positions "
                "(no further shift), -100 ignored; loss is the mean over counted targets; lora_grads are "
                "d(loss)/d(tensor) keyed by PEFT name, same shapes as in adapter_model.safetensors",
        "input_ids": ids_np.tolist(),
        "targets": targets_np.tolist(),
        "loss": loss.item(),
        "lora_effect_max_abs": lora_effect,
        **doc_extra,
        "logits": logits.tolist(),
        "lora_grads": {n: g.tolist() for n, g in zip(names, grads)},
    }
    write_json(os.path.join(out, "expected.json"), doc, one_line_values=True)
    print(f"{family}: loss {loss.item():.12f}, LoRA effect on logits {lora_effect:.3g}, files in {out}")


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "pipeline", "src", "test", "resources", "reference")
    torch.set_num_threads(1)   # fixed reduction order, so reruns are byte-identical
    self_checks()
    for family in ["gpt2", "llama"] + list(FAMILY_CONFIGS):
        build(family, out_root)


if __name__ == "__main__":
    main()
