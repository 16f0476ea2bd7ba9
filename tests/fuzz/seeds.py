#!/usr/bin/env python3
"""seeds.py NAME OUTDIR FIXTURES — writes the generated seed corpus of one
libFuzzer harness into OUTDIR (a build directory: nothing here is
committed). Seeds come from the fixtures (texts, configs, headers of real
checkpoints) or are small valid files built here, because whole checkpoints
are megabytes and a fuzzer mutates kilobytes well. Harnesses with no entry
below rely on their committed seeds in tests/fuzz/corpus/NAME/ alone."""
import collections
import glob
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile


def put(out, name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def seeds_json(out, fx):
    pats = ["configs/*/config.json", "models/*/config.json", "models/*/tokenizer_config.json",
            "chat_templates/*.json", "models/*/special_tokens_map.json"]
    k = 0
    for p in pats:
        for path in sorted(glob.glob(os.path.join(fx, p))):
            with open(path, "rb") as f:
                data = f.read()
            if len(data) <= 16384:
                put(out, "fx%03d.json" % k, data)
                k += 1
    # A safetensors header is the engine's biggest JSON document.
    with open(os.path.join(fx, "models/stories260K/model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        put(out, "st_header.json", f.read(n))


def seeds_tokenizer_sp(out, fx):
    with open(os.path.join(fx, "tokenizer/llama2/cases.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 200:
                break
            case = json.loads(line)
            text = case.get("text", case.get("input", ""))
            if isinstance(text, str):
                # Byte 0 even: text mode.
                put(out, "text%03d" % i, b"\0" + text.encode("utf-8", "surrogatepass")[:2048])
            ids = case.get("ids", case.get("tokens"))
            if isinstance(ids, list) and all(isinstance(x, int) for x in ids):
                put(out, "ids%03d" % i, b"\1" + b"".join(struct.pack("<H", x & 0xffff)
                                                        for x in ids[:512]))


def seeds_protobuf(out, fx):
    with open(os.path.join(fx, "models/stories260K/tokenizer.model"), "rb") as f:
        put(out, "stories260K.model", f.read())


def seeds_stop(out, fx):
    # Stop strings and token pieces taken from the fixture texts.
    with open(os.path.join(fx, "tokenizer/llama2/cases.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 40:
                break
            text = json.loads(line).get("text", "")
            if not isinstance(text, str) or len(text) < 4:
                continue
            b = text.encode("utf-8")[:512]
            stop = b[len(b) // 2:len(b) // 2 + 3].replace(b"\0", b"").replace(b"\1", b"")
            pieces = [b[j:j + 3].replace(b"\1", b"") for j in range(0, len(b), 3)]
            put(out, "fx%02d" % i, bytes([1]) + stop + b"\0" + b"\1".join(pieces))


def gguf_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def tiny_gguf():
    """A small valid GGUF v3: a LLaMA-style tokenizer in the metadata and
    two tensors (F32 and Q8_0)."""
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)] + \
        ["\u2581", "a", "b", "\u2581a", "ab", "\u2581ab", "\u2581w\u00f6"]
    types_ = [2, 3, 3] + [6] * 256 + [1] * 7
    kv = [("general.architecture", 8, gguf_str("llama")),
          ("general.alignment", 4, struct.pack("<I", 32)),
          ("tokenizer.ggml.model", 8, gguf_str("llama")),
          ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, len(toks)) +
           b"".join(gguf_str(t) for t in toks)),
          ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, len(toks)) +
           b"".join(struct.pack("<f", -float(i)) for i in range(len(toks)))),
          ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(toks)) +
           b"".join(struct.pack("<i", t) for t in types_)),
          ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
          ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", 2)),
          ("tokenizer.ggml.add_bos_token", 7, b"\1"),
          ("llama.context_length", 4, struct.pack("<I", 64))]
    tensors = [("a.weight", [2, 2], 0, 16), ("b.weight", [32, 1], 8, 34)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for k, t, v in kv:
        head += gguf_str(k) + struct.pack("<I", t) + v
    off = 0
    for name, dims, ty, nb in tensors:
        head += gguf_str(name) + struct.pack("<I", len(dims)) + \
            b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ty, off)
        off += (nb + 31) // 32 * 32
    head += b"\0" * (-len(head) % 32)
    data = struct.pack("<4f", 1, 2, 3, 4) + b"\0" * 16 + struct.pack("<e", 0.5) + \
        bytes(range(32))
    return head + data + b"\0" * (-len(data) % 32)


def seeds_gguf(out, fx):
    put(out, "tiny.gguf", tiny_gguf())
    # The real thing, cut to its metadata and tensor infos (libFuzzer's
    # -max_len would cut it anyway).
    with open(os.path.join(fx, "models/stories260K/stories260K-f32.gguf"), "rb") as f:
        put(out, "stories260K.head.gguf", f.read(65536))


def tiny_safetensors():
    hdr = json.dumps({"__metadata__": {"format": "pt"},
                      "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                      "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]},
                      "c": {"dtype": "F16", "shape": [], "data_offsets": [22, 24]}},
                     separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)
    return struct.pack("<Q", len(hdr)) + hdr + bytes(range(24))


def seeds_safetensors(out, fx):
    put(out, "tiny.safetensors", tiny_safetensors())
    with open(os.path.join(fx, "models/stories260K/model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        f.seek(0)
        put(out, "stories260K.head.safetensors", f.read(8 + n + 64))


class _Tensor:
    """Pickles the way torch.save does: _rebuild_tensor_v2(storage, offset,
    size, stride, requires_grad, backward_hooks), storages as persistent
    ids. A stand-in 'torch' module makes the globals resolvable."""

    def __init__(self, key, shape, storage_type):
        self.key, self.shape, self.storage_type = key, shape, storage_type

    def __reduce__(self):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (_torch_utils._rebuild_tensor_v2,
                (_Storage(self.key, self.storage_type, acc), 0, tuple(self.shape),
                 tuple(stride), False, collections.OrderedDict()))


class _Storage:
    def __init__(self, key, storage_type, numel):
        self.key, self.storage_type, self.numel = key, storage_type, numel


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
        return None


_torch = types.ModuleType("torch")
_torch_utils = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(*a):
    return a


_rebuild_tensor_v2.__module__ = "torch._utils"
_torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
for _n in ("FloatStorage", "HalfStorage", "BFloat16Storage"):
    setattr(_torch, _n, type(_n, (), {"__module__": "torch"}))
_torch._utils = _torch_utils
sys.modules.setdefault("torch", _torch)
sys.modules.setdefault("torch._utils", _torch_utils)


def zip_put(zf, raw, name, data):
    """Stores one entry with its data 64-byte aligned, as torch.save does
    (a padding extra field in the local header)."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_STORED
    at = raw.tell() + 30 + len(name.encode()) + 4
    info.extra = struct.pack("<HH", 0x4b50, -at % 64) + b"\0" * (-at % 64)
    zf.writestr(info, data)


def tiny_pytorch():
    sd = collections.OrderedDict()
    sd["a.weight"] = _Tensor("0", [2, 2], _torch.FloatStorage)
    sd["b.weight"] = _Tensor("1", [3], _torch.HalfStorage)
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(sd)
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zip_put(zf, z, "archive/data.pkl", buf.getvalue())
        zip_put(zf, z, "archive/byteorder", b"little")
        zip_put(zf, z, "archive/data/0", struct.pack("<4f", 1, 2, 3, 4))
        zip_put(zf, z, "archive/data/1", struct.pack("<3e", 1, 2, 3))
        zip_put(zf, z, "archive/version", b"3\n")
    return z.getvalue()


def seeds_pytorch(out, fx):
    put(out, "tiny.bin", tiny_pytorch())
    # The fixture checkpoint with its large storages cut to 16 bytes: the
    # zip and the whole pickle stay, most weights do not.
    src = zipfile.ZipFile(os.path.join(fx, "models/stories260K-bin/pytorch_model.bin"))
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for info in src.infolist():
            data = src.read(info)
            if "/data/" in info.filename and len(data) > 4096:
                data = data[:16]
            zip_put(zf, z, info.filename, data)
    put(out, "stories260K.cut.bin", z.getvalue())


def main():
    name, out, fx = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    fn = globals().get("seeds_" + name)
    if fn:
        fn(out, fx)


if __name__ == "__main__":
    main()
