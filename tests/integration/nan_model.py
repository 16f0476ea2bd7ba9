"""nan_model.py SRC_DIR DST_DIR — a copy of a safetensors model snapshot
whose final norm's weights are NaN (so every logit is NaN), for the tests of
what the daemon and the CLI do with a broken model. Copies config.json,
tokenizer.model and tokenizer_config.json; writes model.safetensors."""
import json
import os
import shutil
import struct
import sys

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for f in ("config.json", "tokenizer.model", "tokenizer_config.json"):
    shutil.copy(os.path.join(src, f), dst)
d = bytearray(open(os.path.join(src, "model.safetensors"), "rb").read())
n = struct.unpack("<Q", d[:8])[0]
t = json.loads(d[8:8 + n])["model.norm.weight"]
a, b = t["data_offsets"]
size = {"F32": 4, "F16": 2, "BF16": 2}[t["dtype"]]
nan = {"F32": b"\x00\x00\xc0\x7f", "F16": b"\x00\x7e", "BF16": b"\xc0\x7f"}[t["dtype"]]
for o in range(8 + n + a, 8 + n + b, size):
    d[o:o + size] = nan
open(os.path.join(dst, "model.safetensors"), "wb").write(d)
