#!/usr/bin/env python3
"""make_r1_bench_model.py -- random-weight MobileLLM-R1-shaped snapshots for bench/.

Writes OUTDIR/NAME/{config.json, model.safetensors} (BF16) for the R1 shapes
below, numpy only (no torch/transformers needed): the config is the one
../shared/tools/make_tiny_llama4.py gives transformers (its hf_config_kwargs,
imported from there), the weights are drawn in the same order from the same
seeded PCG64 stream as its make_weights(), but tensor by tensor and written as
they come, so the 950M shape never holds more than one tensor in memory.
BF16 is float32 rounded to nearest even, as torch's .to(bfloat16).

Usage: make_r1_bench_model.py OUTDIR [140m|360m|950m ...] [--shared DIR]
"""
import json, os, struct, sys
import numpy as np

SHAPES = {  # MobileLLM-R1 (Meta's model cards): layers, hidden, heads, kv heads, ffn
    "140m": dict(layers=15, hidden=576, heads=9, kv_heads=3, ffn=2048),
    "360m": dict(layers=15, hidden=1024, heads=16, kv_heads=4, ffn=4096),
    "950m": dict(layers=22, hidden=1536, heads=24, kv_heads=6, ffn=6144),
}


def spec(shape):
    s = dict(SHAPES[shape])
    s.update(head_dim=64, dtype="BF16", seed=140 if shape == "140m" else 950, ctx=32768,
             chunk=32768, o_std=1.0, down_std=1.0)
    return s


def tensors(s, vocab):
    """(name, shape, std) in make_tiny_llama4.make_weights() draw order."""
    D, L, H, KV, hd, F = s["hidden"], s["layers"], s["heads"], s["kv_heads"], s["head_dim"], s["ffn"]
    out = [("model.embed_tokens.weight", (vocab, D), 0.35, 0.0)]
    for l in range(L):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (D,), 0.1, 1.0),
                (p + "self_attn.q_proj.weight", (H * hd, D), 1.0 / np.sqrt(D), 0.0),
                (p + "self_attn.k_proj.weight", (KV * hd, D), 1.0 / np.sqrt(D), 0.0),
                (p + "self_attn.v_proj.weight", (KV * hd, D), 1.0 / np.sqrt(D), 0.0),
                (p + "self_attn.o_proj.weight", (D, H * hd), s["o_std"] / np.sqrt(H * hd), 0.0),
                (p + "post_attention_layernorm.weight", (D,), 0.1, 1.0),
                (p + "feed_forward.gate_proj.weight", (F, D), 1.0 / np.sqrt(D), 0.0),
                (p + "feed_forward.up_proj.weight", (F, D), 1.0 / np.sqrt(D), 0.0),
                (p + "feed_forward.down_proj.weight", (D, F), s["down_std"] / np.sqrt(F), 0.0)]
    out.append(("model.norm.weight", (D,), 0.1, 1.0))
    return out


def bf16(a):
    u = a.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even
    return u.astype(np.uint16)


def write(name, s, outdir, tiny):
    d = os.path.join(outdir, name)
    st = os.path.join(d, "model.safetensors")
    if os.path.exists(st):
        print(d, "exists")
        return
    os.makedirs(d, exist_ok=True)
    cfg = tiny.hf_config_kwargs(s)
    cfg.update(architectures=["Llama4ForCausalLM"], model_type="llama4_text", dtype="bfloat16")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    ts = tensors(s, tiny.VOCAB)
    header, off = {}, 0
    for n, shape, _, _ in ts:
        nb = int(np.prod(shape)) * 2
        header[n] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    rng = np.random.default_rng(s["seed"])
    tmp = st + ".part"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for n, shape, std, mean in ts:
            a = (rng.standard_normal(shape) * std).astype(np.float32)
            if mean:
                a = np.float32(mean) + a
            f.write(bf16(a).tobytes())
    os.rename(tmp, st)
    print(d, sum(int(np.prod(t[1])) for t in ts), "params")


if __name__ == "__main__":
    argv = sys.argv[1:]
    shared = os.environ.get("MLLM_SHARED", "../shared")
    if "--shared" in argv:
        i = argv.index("--shared"); shared = argv[i + 1]; del argv[i:i + 2]
    if not argv:
        sys.exit(__doc__)
    sys.path.insert(0, os.path.join(shared, "tools"))
    import make_tiny_llama4 as tiny  # hf_config_kwargs, VOCAB (numpy-only at import)
    for shape in argv[1:] or ["140m", "950m"]:
        write("mobilellm-r1-" + shape + "-bf16", spec(shape), argv[0], tiny)
