#!/usr/bin/env python3
"""Trains, exports and checks the mobilellmd demo model (one GPU, PyTorch).

Input: the folder prepare.py writes (tokenizer.model, train/*.bin,
heldout/*.bin, meta.json). Output, under --out:

  model.safetensors, config.json   the HF snapshot files the engine loads (F16)
  golden.json                      float64 reference logits and greedy
                                   continuations of the exported F16 weights
  eval.json                        held-out perplexity (per source, overall),
                                   unigram baseline, samples, training figures
  train.log                        this script's log

The architecture is MobileLLM's (deep and thin, GQA, SwiGLU, RMSNorm, RoPE
rotate_half, shared input/output embedding, immediate block-wise layer
sharing). Fixed seeds; the step count, not the wall clock, ends training.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BOS, EOS = 1, 2

# Prompts of the golden check (the engine test replays them) and of the
# model card's samples. The last two exercise byte fallback and digits.
GOLDEN_PROMPTS = [
    "",
    "The capital of France is",
    "It is a truth universally acknowledged, that",
    "Call me Ishmael. Some years ago",
    "Mr. Speaker, Mr. Vice President, Members of Congress, the state of our Union",
    "Holmes looked at me and said: \"Watson, in 1891 the naïve café owner 🦙",
]
SAMPLE_PROMPTS = [
    "The capital of France is",
    "Once upon a time",
    "Sherlock Holmes took his bottle from the corner of the mantelpiece",
    "The economy of the country",
    "HACKER, n.",
]
N_GREEDY = 32
TOPK = 10


def log(*a):
    msg = " ".join(str(x) for x in a)
    print(msg, flush=True)
    if LOG_FILE is not None:
        LOG_FILE.write(msg + "\n")
        LOG_FILE.flush()


LOG_FILE = None


# ---- The model -------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_tables(T, hd, theta, device):
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, device=device, dtype=torch.float64) / hd)
    ang = torch.outer(torch.arange(T, device=device, dtype=torch.float64), inv)
    ang = torch.cat([ang, ang], -1)
    return ang.cos().float(), ang.sin().float()


def rope(x, cos, sin):
    # x [B, n, T, hd]; rotate_half pairs (i, i + hd/2), as HF Llama does.
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], -1)
    return x * cos + rot * sin


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c["hidden_size"], c["head_dim"]
        self.H, self.KV, self.hd = c["num_attention_heads"], c["num_key_value_heads"], hd
        self.input_layernorm = RMSNorm(d, c["rms_norm_eps"])
        self.q_proj = nn.Linear(d, self.H * hd, bias=False)
        self.k_proj = nn.Linear(d, self.KV * hd, bias=False)
        self.v_proj = nn.Linear(d, self.KV * hd, bias=False)
        self.o_proj = nn.Linear(self.H * hd, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d, c["rms_norm_eps"])
        self.gate_proj = nn.Linear(d, c["intermediate_size"], bias=False)
        self.up_proj = nn.Linear(d, c["intermediate_size"], bias=False)
        self.down_proj = nn.Linear(c["intermediate_size"], d, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.KV, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.KV, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin).to(v.dtype), rope(k, cos, sin).to(v.dtype)
        # GQA: query head i reads KV head i // (H / KV).
        k = k.repeat_interleave(self.H // self.KV, dim=1)
        v = v.repeat_interleave(self.H // self.KV, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(o.transpose(1, 2).reshape(B, T, self.H * self.hd))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class MobileLLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.reps = 2 if c["layer_sharing"] else 1
        runs = c["num_hidden_layers"] * self.reps
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if n.endswith("o_proj.weight") or n.endswith("down_proj.weight"):
                    std = 0.02 / math.sqrt(2 * runs)
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        T = idx.shape[1]
        cos, sin = rope_tables(T, self.c["head_dim"], self.c["rope_theta"], idx.device)
        x = self.embed_tokens(idx)
        for blk in self.layers:
            for _ in range(self.reps):  # immediate block-wise sharing
                x = blk(x, cos, sin)
        x = self.norm(x)
        # Shared embedding: the output projection is the token embedding.
        return x @ self.embed_tokens.weight.to(x.dtype).t()


# ---- Export / import in the HF snapshot layout -----------------------------

HF_NAMES = {
    "input_layernorm": "input_layernorm", "post_attention_layernorm": "post_attention_layernorm",
    "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
    "down_proj": "mlp.down_proj",
}


def to_hf(model):
    out = {}
    for n, p in model.state_dict().items():
        if n.startswith("layers."):
            _, l, mod, w = n.split(".")
            out[f"model.layers.{l}.{HF_NAMES[mod]}.{w}"] = p
        else:
            out["model." + n] = p
    return out


def from_hf(sd):
    inv = {v: k for k, v in HF_NAMES.items()}
    out = {}
    for n, p in sd.items():
        assert n.startswith("model."), n
        n = n[len("model."):]
        if n.startswith("layers."):
            parts = n.split(".")
            out[f"layers.{parts[1]}.{inv['.'.join(parts[2:-1])]}.{parts[-1]}"] = p
        else:
            out[n] = p
    return out


def hf_config(c):
    return {
        "architectures": ["MobileLLMForCausalLM"],
        "model_type": "mobilellm",
        "hidden_size": c["hidden_size"],
        "intermediate_size": c["intermediate_size"],
        "num_hidden_layers": c["num_hidden_layers"],
        "num_attention_heads": c["num_attention_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "head_dim": c["head_dim"],
        "vocab_size": c["vocab_size"],
        "max_position_embeddings": c["max_position_embeddings"],
        "rms_norm_eps": c["rms_norm_eps"],
        "rope_theta": c["rope_theta"],
        "hidden_act": "silu",
        "attention_bias": False,
        "share_embedding": True,
        "layer_sharing": c["layer_sharing"],
        "tie_word_embeddings": False,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": 0,
        "torch_dtype": "float16",
    }


# ---- Float64 reference (the golden) ----------------------------------------

def ref_forward(c, sd, ids):
    """Whole-sequence forward in float64 on the CPU from HF-named tensors.
    Written independently of the nn.Module above (which it cross-checks).
    Returns logits [T, V]."""
    d, H, KV = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, eps = c["head_dim"], c["rms_norm_eps"]
    T = len(ids)
    x = sd["model.embed_tokens.weight"][torch.tensor(ids)]
    inv = 1.0 / c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    cos, sin = torch.cat([ang, ang], 1).cos(), torch.cat([ang, ang], 1).sin()

    def rot(v):  # v [T, n, hd]
        r = torch.cat([-v[..., hd // 2:], v[..., :hd // 2]], -1)
        return v * cos[:, None] + r * sin[:, None]

    def rms(v, g):
        return g * v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps)

    mask = torch.triu(torch.full((T, T), float("-inf"), dtype=torch.float64), 1)
    reps = 2 if c["layer_sharing"] else 1
    for l in range(c["num_hidden_layers"]):
        W = {k: sd[f"model.layers.{l}.{v}.weight"] for k, v in HF_NAMES.items()}
        for _ in range(reps):
            h = rms(x, W["input_layernorm"])
            q = rot((h @ W["q_proj"].T).view(T, H, hd))
            k = rot((h @ W["k_proj"].T).view(T, KV, hd))
            v = (h @ W["v_proj"].T).view(T, KV, hd)
            o = torch.empty(T, H, hd, dtype=torch.float64)
            for i in range(H):
                g = i // (H // KV)
                a = torch.softmax(q[:, i] @ k[:, g].T / math.sqrt(hd) + mask, -1)
                o[:, i] = a @ v[:, g]
            x = x + o.reshape(T, H * hd) @ W["o_proj"].T
            h = rms(x, W["post_attention_layernorm"])
            x = x + (F.silu(h @ W["gate_proj"].T) * (h @ W["up_proj"].T)) @ W["down_proj"].T
    return rms(x, sd["model.norm.weight"]) @ sd["model.embed_tokens.weight"].T


def make_golden(c, sd64, sp):
    cases = []
    for text in GOLDEN_PROMPTS:
        ids = [BOS] + sp.encode(text)
        with torch.no_grad():
            z = ref_forward(c, sd64, ids)
        lse = torch.logsumexp(z, -1)
        top = [[[int(j), float(z[p, j])] for j in torch.argsort(-z[p], stable=True)[:TOPK]]
               for p in range(len(ids))]
        last = z[-1].clone()
        seq = list(ids)
        g_ids, g_lp, g_top = [], [], []
        for _ in range(N_GREEDY):
            with torch.no_grad():
                zz = ref_forward(c, sd64, seq)[-1]
            lp = zz - torch.logsumexp(zz, 0)
            nxt = int(torch.argmax(zz))
            g_ids.append(nxt)
            g_lp.append(float(lp[nxt]))
            g_top.append([[int(j), float(lp[j])] for j in torch.argsort(-lp, stable=True)[:5]])
            seq.append(nxt)
            if nxt == EOS:
                break
        margin = min(t[0][1] - t[1][1] for t in g_top)
        cases.append({"text": text, "ids": ids, "top": top,
                      "logsumexp": [float(v) for v in lse],
                      "last_logits": [float(v) for v in last],
                      "greedy": {"ids": g_ids, "logprobs": g_lp, "top_logprobs": g_top,
                                 "text": sp.decode(g_ids), "min_top1_top2_margin": margin}})
        log(f"golden {len(cases) - 1}: {len(ids)} prompt tokens, greedy {len(g_ids)}, "
            f"margin {margin:.3f}: {sp.decode(g_ids)!r}")
    return {"model_dir": "mobilellm-demo", "weights": "safetensors",
            "reference": "float64 forward pass (torch, CPU) of the exported F16 weights, "
                         "tools/train/train.py ref_forward; cross-checked against the "
                         "training module in float32",
            "bos_prepended": True, "topk": TOPK, "cases": cases}


# ---- Data ------------------------------------------------------------------

class Data:
    """Every source's training stream on the GPU; batches are random windows,
    the source drawn with probability weight x tokens (the mixture)."""

    def __init__(self, d, meta, T, device, seed):
        names = [s for s, v in meta["sources"].items() if v["weight"] > 0]
        arrs = [np.fromfile(os.path.join(d, "train", s + ".bin"), dtype="<u2") for s in names]
        self.tok = torch.from_numpy(np.concatenate(arrs).astype(np.int64)).to(device)
        lens = torch.tensor([a.size for a in arrs], dtype=torch.float64)
        self.start = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.float64), lens[:-1]]), 0).to(device)
        self.span = (lens - T - 1).to(device)
        w = torch.tensor([meta["sources"][s]["weight"] for s in names], dtype=torch.float64) * lens
        self.p = (w / w.sum()).to(device)
        self.names, self.T = names, T
        self.g = torch.Generator(device=device)
        self.g.manual_seed(seed)
        self.ar = torch.arange(T + 1, device=device)
        self.n_tokens = int(lens.sum())

    def batch(self, B):
        s = torch.multinomial(self.p, B, replacement=True, generator=self.g)
        u = torch.rand(B, generator=self.g, device=self.p.device, dtype=torch.float64)
        off = (self.start[s] + torch.floor(u * self.span[s])).long()
        w = self.tok[off[:, None] + self.ar]
        return w[:, :-1], w[:, 1:]


def heldout_eval(model, d, meta, T, device, dtype):
    """Per-source and overall held-out cross-entropy: each source's held-out
    stream in consecutive windows of T tokens, every token but <s> scored
    once. Returns {source: {tokens, nll, ppl, bpb}}."""
    res = {}
    tot_nll = tot_n = tot_b = 0.0
    model.eval()
    for s in meta["sources"]:
        a = torch.from_numpy(np.fromfile(os.path.join(d, "heldout", s + ".bin"), dtype="<u2").astype(np.int64)).to(device)
        nll, n = 0.0, 0
        for i in range(0, a.numel() - 1, T):
            x = a[i:i + T][None]
            y = a[i + 1:i + T + 1][None]
            x = x[:, :y.shape[1]]
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                z = model(x).float()
            m = y != BOS
            l = F.cross_entropy(z.view(-1, z.shape[-1]), y.view(-1), reduction="none")
            nll += float(l[m.view(-1)].double().sum())
            n += int(m.sum())
        nb = meta["sources"][s]["heldout_bytes"]
        res[s] = {"tokens": n, "nll": nll, "ppl": math.exp(nll / n), "bpb": nll / math.log(2) / nb}
        tot_nll += nll
        tot_n += n
        tot_b += nb
    res["all"] = {"tokens": int(tot_n), "nll": tot_nll, "ppl": math.exp(tot_nll / tot_n),
                  "bpb": tot_nll / math.log(2) / tot_b}
    model.train()
    return res


def generate(model, sp, prompt, n, temperature, gen, device):
    ids = [BOS] + sp.encode(prompt)
    model.eval()
    for _ in range(n):
        with torch.no_grad():
            z = model(torch.tensor([ids], device=device))[0, -1].float()
        if temperature == 0:
            nxt = int(torch.argmax(z))
        else:
            p = torch.softmax(z / temperature, -1)
            nxt = int(torch.multinomial(p, 1, generator=gen))
        if nxt == EOS:
            break
        ids.append(nxt)
    model.train()
    return sp.decode(ids[1:])  # the prompt and its continuation


# ---- Main ------------------------------------------------------------------

def main():
    global LOG_FILE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=".train/data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=64, help="sequences per step")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="safety net: stop training after this many seconds (0 = off)")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=9, help="stored blocks")
    ap.add_argument("--no-layer-sharing", action="store_true")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=704)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    LOG_FILE = open(os.path.join(a.out, "train.log"), "w")
    log("args:", " ".join(sys.argv[1:]))
    t_start = time.time()

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = "cuda"
    meta = json.load(open(os.path.join(a.data, "meta.json")))
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.data, "tokenizer.model"))
    c = {"hidden_size": a.dim, "intermediate_size": a.ffn, "num_hidden_layers": a.layers,
         "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
         "head_dim": a.dim // a.heads, "vocab_size": meta["vocab_size"],
         "max_position_embeddings": a.seq, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
         "layer_sharing": not a.no_layer_sharing}
    model = MobileLLM(c).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    n_emb = model.embed_tokens.weight.numel()
    log(f"model: {n_params} parameters ({n_emb} in the shared embedding), "
        f"{a.layers} stored blocks x {2 if c['layer_sharing'] else 1} runs, dim {a.dim}, "
        f"{a.heads} heads / {a.kv_heads} kv heads of {c['head_dim']}, ffn {a.ffn}, vocab {c['vocab_size']}")
    data = Data(a.data, meta, a.seq, device, a.seed)
    log(f"data: {data.n_tokens} training tokens in {len(data.names)} sources; "
        f"{a.steps} steps x {a.batch} x {a.seq} = {a.steps * a.batch * a.seq} tokens "
        f"({a.steps * a.batch * a.seq / data.n_tokens:.1f} passes)")

    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        t = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))

    fwd = model
    if not a.no_compile:
        fwd = torch.compile(model)

    def train_step(x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            z = fwd(x)
        loss = F.cross_entropy(z.float().view(-1, z.shape[-1]), y.reshape(-1))
        loss.backward()
        return loss

    history = []
    t_train = time.time()
    t_mark, tok_mark = time.time(), 0
    steps_done = 0
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, y = data.batch(a.batch)
        loss = train_step(x, y)
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps_done = step + 1
        tok_mark += a.batch * a.seq
        if step % 100 == 0 or step == a.steps - 1:
            torch.cuda.synchronize()
            dt = time.time() - t_mark
            log(f"step {step:5d}  loss {loss.item():.4f}  gnorm {float(gn):.3f}  lr {lr_at(step):.2e}  "
                f"{tok_mark / dt / 1e3:.0f} ktok/s  {time.time() - t_start:.0f} s")
            t_mark, tok_mark = time.time(), 0
        if a.eval_every and step > 0 and step % a.eval_every == 0:
            ev = heldout_eval(model, a.data, meta, a.seq, device, torch.bfloat16)
            history.append({"step": step, "heldout_ppl": ev["all"]["ppl"], "train_loss": loss.item()})
            log(f"eval step {step}: held-out ppl {ev['all']['ppl']:.2f} ({ev['all']['bpb']:.3f} bits/byte)")
        if a.time_limit and time.time() - t_train > a.time_limit:
            log(f"time limit reached after {steps_done} steps: stopping early")
            break
    torch.cuda.synchronize()
    train_s = time.time() - t_train
    log(f"trained {steps_done} steps in {train_s:.0f} s")

    # Export: F16, HF names, no lm_head (shared embedding).
    from safetensors.torch import save_file, load_file
    sd = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in to_hf(model).items()}
    save_file(sd, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    json.dump(hf_config(c), open(os.path.join(a.out, "config.json"), "w"), indent=2)
    log(f"exported {len(sd)} tensors, {os.path.getsize(os.path.join(a.out, 'model.safetensors'))} bytes")

    # Everything below uses the exported F16 weights, as the engine will.
    back = load_file(os.path.join(a.out, "model.safetensors"))
    m32 = MobileLLM(c).to(device)
    m32.load_state_dict({k: v.float() for k, v in from_hf(back).items()})
    m32.eval()
    sd64 = {k: v.double() for k, v in back.items()}

    # Cross-check the float64 reference against the module in float32.
    # TF32 off from here on: evaluation and samples run in true float32,
    # the precision the engine computes in.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ids = [BOS] + sp.encode(GOLDEN_PROMPTS[2])
    z64 = ref_forward(c, sd64, ids)
    with torch.no_grad():
        z32 = m32(torch.tensor([ids], device=device)).double().cpu()[0]
    err = float((z32 - z64).abs().max())
    log(f"reference vs training module (fp32, TF32 off): max |logit diff| {err:.2e}")
    assert err < 1e-3, "the float64 reference and the trained module disagree"

    golden = make_golden(c, sd64, sp)
    json.dump(golden, open(os.path.join(a.out, "golden.json"), "w"))

    ev = heldout_eval(m32, a.data, meta, a.seq, device, torch.float32)
    for s, v in ev.items():
        u = meta["unigram_heldout"][s]
        log(f"held-out {s:10s} ppl {v['ppl']:8.2f}  {v['bpb']:.3f} bits/byte   "
            f"(unigram ppl {u['ppl']:8.1f}  {u['bpb']:.3f} bits/byte)")

    gen = torch.Generator(device=device)
    gen.manual_seed(a.seed)
    samples = []
    for p in SAMPLE_PROMPTS:
        g = generate(m32, sp, p, 48, 0.0, gen, device)
        s1 = generate(m32, sp, p, 48, 0.8, gen, device)
        samples.append({"prompt": p, "greedy": g, "sampled_t0.8": s1})
        log(f"sample {p!r}\n  greedy: {g!r}\n  t=0.8: {s1!r}")

    out = {"config": c, "n_params": n_params, "n_params_embedding": n_emb,
           "args": vars(a), "steps": steps_done, "train_tokens_seen": steps_done * a.batch * a.seq,
           "train_tokens_unique": data.n_tokens, "train_seconds": train_s,
           "total_seconds": time.time() - t_start, "final_train_loss": loss.item(),
           "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "heldout": ev, "unigram_heldout": meta["unigram_heldout"], "history": history,
           "samples": samples, "reference_check_max_diff": err}
    json.dump(out, open(os.path.join(a.out, "eval.json"), "w"), indent=1)
    log(f"done in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
