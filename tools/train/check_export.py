#!/usr/bin/python3
"""Independent check of an exported snapshot against its golden.json (CPU).

Reads model.safetensors with a small parser of its own (no torch), runs a
float64 numpy forward pass and compares with golden.json: top-10 and
last-position logits, log-sum-exp, and the greedy continuation. This guards
the export (tensor names, layouts, layer sharing) independently of the
PyTorch code that trained the model and wrote the goldens.

Usage: /usr/bin/python3 tools/train/check_export.py [models/mobilellm-demo]
Exit status 0 when everything agrees within 1e-6 (both are float64).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import sentencepiece as spm

DTYPES = {"F16": "<f2", "BF16": None, "F32": "<f4"}


def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        if t["dtype"] == "BF16":
            u = np.frombuffer(raw[base + a:base + b], dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw[base + a:base + b], dtype=DTYPES[t["dtype"]])
        out[name] = arr.astype(np.float64).reshape(t["shape"])
    return out


def forward(cfg, sd, ids):
    d, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", d // H)
    eps, theta = cfg["rms_norm_eps"], float(cfg["rope_theta"])
    T = len(ids)
    x = sd["model.embed_tokens.weight"][ids]
    inv = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
    ang = np.outer(np.arange(T), inv)
    cos = np.cos(np.concatenate([ang, ang], 1))[:, None, :]
    sin = np.sin(np.concatenate([ang, ang], 1))[:, None, :]

    def rot(v):
        return v * cos + np.concatenate([-v[..., hd // 2:], v[..., :hd // 2]], -1) * sin

    def rms(v, g):
        return g * v / np.sqrt((v * v).mean(-1, keepdims=True) + eps)

    mask = np.triu(np.full((T, T), -np.inf), 1)
    reps = 2 if cfg.get("layer_sharing") else 1
    for l in range(cfg["num_hidden_layers"]):
        def W(n):
            return sd[f"model.layers.{l}.{n}.weight"]
        for _ in range(reps):
            h = rms(x, W("input_layernorm"))
            q = rot((h @ W("self_attn.q_proj").T).reshape(T, H, hd))
            k = rot((h @ W("self_attn.k_proj").T).reshape(T, KV, hd))
            v = (h @ W("self_attn.v_proj").T).reshape(T, KV, hd)
            o = np.empty((T, H, hd))
            for i in range(H):
                g = i // (H // KV)
                s = q[:, i] @ k[:, g].T / math.sqrt(hd) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                o[:, i] = (s / s.sum(-1, keepdims=True)) @ v[:, g]
            x = x + o.reshape(T, H * hd) @ W("self_attn.o_proj").T
            h = rms(x, W("post_attention_layernorm"))
            gt = h @ W("mlp.gate_proj").T
            x = x + (gt / (1 + np.exp(-gt)) * (h @ W("mlp.up_proj").T)) @ W("mlp.down_proj").T
    out = sd.get("lm_head.weight", sd["model.embed_tokens.weight"])
    return rms(x, sd["model.norm.weight"]) @ out.T


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "models/mobilellm-demo"
    cfg = json.load(open(os.path.join(d, "config.json")))
    sd = load_safetensors(os.path.join(d, "model.safetensors"))
    assert "lm_head.weight" not in sd and cfg["share_embedding"]
    gold = json.load(open(os.path.join(d, "golden.json")))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
    worst = 0.0
    for ci, c in enumerate(gold["cases"]):
        assert c["ids"] == [1] + sp.encode(c["text"]), f"case {ci}: tokenizer disagrees"
        z = forward(cfg, sd, c["ids"])
        top_err = max(abs(z[p, j] - v) for p, row in enumerate(c["top"]) for j, v in row)
        last_err = float(np.abs(z[-1] - np.asarray(c["last_logits"])).max())
        m = z.max(-1)
        lse = m + np.log(np.exp(z - m[:, None]).sum(-1))
        lse_err = float(np.abs(lse - np.asarray(c["logsumexp"])).max())
        seq = list(c["ids"])
        for t in c["greedy"]["ids"]:
            nxt = int(forward(cfg, sd, seq)[-1].argmax())
            assert nxt == t, f"case {ci}: greedy step {len(seq) - len(c['ids'])}: {nxt} != {t}"
            seq.append(nxt)
        worst = max(worst, top_err, last_err, lse_err)
        print(f"case {ci}: top {top_err:.1e} last {last_err:.1e} lse {lse_err:.1e}, "
              f"greedy {len(c['greedy']['ids'])} tokens identical: {c['greedy']['text']!r}")
    print(f"worst |diff| {worst:.2e}")
    sys.exit(0 if worst < 1e-6 else 1)


if __name__ == "__main__":
    main()
