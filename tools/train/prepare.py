#!/usr/bin/python3
"""Data preparation for the demo model, on the CPU machine (no torch needed).

Reads the project's public-domain corpus (../shared/corpus), holds out the
documented split (the last heldout_bytes of every source, per stats.tsv),
trains the SentencePiece BPE tokenizer on the weighted training mixture and
writes flat uint16 token streams that the GPU run (train.py) needs:

  OUT/tokenizer.model          the tokenizer (LLaMA-style settings)
  OUT/train/<source>.bin       training paragraphs, each as <s> ids </s>
  OUT/heldout/<source>.bin     held-out paragraphs, same format
  OUT/meta.json                mixture weights, token and byte counts,
                               unigram baseline on the held-out split

Runs with Debian's /usr/bin/python3 (sentencepiece, numpy). Deterministic:
same corpus in, same bytes out.
"""
import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import sentencepiece as spm

# The corpus's "Suggested mixture" (SOURCES.md): everything non-religious at
# weight 1, the modern Bible at 1, KJV and Henry at 0.5, Spurgeon at 0.25,
# Scofield left out. A weight scales how often a source is sampled relative
# to its size; every training paragraph of a source with weight > 0 is
# available to the sampler.
MIXTURE = {
    "austen": 1.0, "moby_dick": 1.0, "sherlock": 1.0, "opticks": 1.0,
    "devil": 1.0, "sotu": 1.0, "factbook": 1.0, "jargon": 1.0,
    "web": 1.0, "kjv": 0.5, "mhcc": 0.5, "tdavid": 0.25, "scofield": 0.0,
}
BOS, EOS = 1, 2


def paragraphs(data: bytes):
    """Paragraphs of a cleaned source: separated by one blank line."""
    text = data.decode("utf-8")
    return [p.strip("\n") for p in text.split("\n\n") if p.strip()]


def split_source(corpus, name, heldout_bytes):
    data = open(os.path.join(corpus, "sources", name + ".txt"), "rb").read()
    cut = len(data) - heldout_bytes
    if cut <= 0 or data[cut - 2:cut] != b"\n\n":
        sys.exit(f"{name}: held-out cut at {cut} is not at a paragraph boundary")
    return data[:cut], data[cut:]


def train_tokenizer(out_dir, mix_paras, vocab_size, seed):
    """Trains the BPE model on the weighted mixture, one paragraph a line.

    Settings follow the LLaMA tokenizer that every classic MobileLLM ships
    (read from its trainer_spec/normalizer_spec): BPE, byte fallback, digits
    split, identity normalisation, dummy prefix on, whitespace kept,
    <unk>=0 <s>=1 </s>=2, no <pad>.
    """
    inp = os.path.join(out_dir, "spm_input.txt")
    with open(inp, "w", encoding="utf-8") as f:
        for p in mix_paras:
            # One sentence per line: newlines inside verse become separate
            # sentences, which is what SentencePiece expects.
            for line in p.split("\n"):
                if line.strip():
                    f.write(line + "\n")
    prefix = os.path.join(out_dir, "tokenizer")
    spm.SentencePieceTrainer.train(
        input=inp, model_prefix=prefix, model_type="bpe",
        vocab_size=vocab_size, character_coverage=0.99995,
        byte_fallback=True, split_digits=True,
        allow_whitespace_only_pieces=True, max_sentencepiece_length=16,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        max_sentence_length=16384, input_sentence_size=0,
        shuffle_input_sentence=False, num_threads=2, seed_sentencepiece_size=1000000,
        minloglevel=2)
    os.remove(inp)
    os.remove(prefix + ".vocab")
    return prefix + ".model"


def encode_paras(sp, paras):
    """<s> ids </s> per paragraph, concatenated, as uint16."""
    out = []
    for ids in sp.encode(paras):
        out.append(BOS)
        out.extend(ids)
        out.append(EOS)
    a = np.asarray(out, dtype=np.int64)
    assert a.max() < 65536
    return a.astype("<u2")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="../shared/corpus")
    ap.add_argument("--out", default=".train/data")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    t0 = time.time()
    os.makedirs(os.path.join(a.out, "train"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "heldout"), exist_ok=True)

    rows = list(csv.DictReader(open(os.path.join(a.corpus, "stats.tsv")), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert sorted(r["source"] for r in rows) == sorted(MIXTURE), "corpus sources changed"
    train, held = {}, {}
    for r in rows:
        tr, ho = split_source(a.corpus, r["source"], int(r["heldout_bytes"]))
        train[r["source"]] = paragraphs(tr)
        held[r["source"]] = paragraphs(ho)
        # stats.tsv shows the tail's first characters with quotes blanked.
        want = "".join(c for c in r["heldout_starts_with"] if c.isalnum())[:30]
        got = "".join(c for c in held[r["source"]][0] if c.isalnum())[:30]
        if got != want:
            sys.exit(f"{r['source']}: held-out tail does not start where stats.tsv says")

    # The held-out tails together are exactly heldout.txt (paragraph for
    # paragraph), so the per-source figures add up to the documented split.
    ho_all = paragraphs(open(os.path.join(a.corpus, "heldout.txt"), "rb").read())
    assert ho_all == [p for r in rows for p in held[r["source"]]], "held-out split mismatch"

    # Tokenizer input: the mixture itself. A fractional weight keeps an
    # evenly spaced subset of the source's paragraphs (deterministic).
    mix = []
    for r in rows:
        w = MIXTURE[r["source"]]
        ps = train[r["source"]]
        if w >= 1:
            mix.extend(ps)
        elif w > 0:
            step = 1.0 / w
            mix.extend(ps[int(i * step)] for i in range(int(len(ps) * w)))
    model_path = train_tokenizer(a.out, mix, a.vocab, a.seed)
    sp = spm.SentencePieceProcessor(model_file=model_path)
    assert sp.vocab_size() == a.vocab and sp.bos_id() == BOS and sp.eos_id() == EOS
    print(f"tokenizer: {a.vocab} pieces, trained on {sum(len(p) for p in mix)} chars "
          f"({time.time() - t0:.0f} s)", flush=True)

    meta = {"vocab_size": a.vocab, "bos_id": BOS, "eos_id": EOS, "mixture": MIXTURE,
            "sources": {}, "tokenizer_sha256": hashlib.sha256(open(model_path, "rb").read()).hexdigest()}
    counts = np.zeros(a.vocab, dtype=np.float64)
    for r in rows:
        s = r["source"]
        tr = encode_paras(sp, train[s])
        ho = encode_paras(sp, held[s])
        tr.tofile(os.path.join(a.out, "train", s + ".bin"))
        ho.tofile(os.path.join(a.out, "heldout", s + ".bin"))
        # Unigram counts follow the sampling mixture (weight x size), the
        # distribution the network is trained on; <s> is never predicted.
        c = np.bincount(tr.astype(np.int64), minlength=a.vocab).astype(np.float64)
        c[BOS] = 0
        counts += MIXTURE[s] * c
        meta["sources"][s] = {
            "weight": MIXTURE[s],
            "train_paragraphs": len(train[s]), "train_tokens": int(tr.size),
            "train_bytes": sum(len(p.encode()) for p in train[s]),
            "heldout_paragraphs": len(held[s]), "heldout_tokens": int(ho.size),
            "heldout_bytes": sum(len(p.encode()) for p in held[s]),
        }
        print(f"{s:10s} train {tr.size:9d} tok  held-out {ho.size:7d} tok", flush=True)

    # Unigram baseline on the held-out split: add-one smoothed token
    # frequencies of the weighted training mixture. Scored on the same
    # predictions the network is scored on: every token but <s>.
    p = (counts + 1.0) / (counts.sum() + a.vocab)
    logp = np.log(p)
    uni = {}
    tot_nll = tot_n = tot_b = 0.0
    for s in meta["sources"]:
        ho = np.fromfile(os.path.join(a.out, "heldout", s + ".bin"), dtype="<u2").astype(np.int64)
        ho = ho[ho != BOS]
        nll = float(-logp[ho].sum())
        nb = meta["sources"][s]["heldout_bytes"]
        uni[s] = {"ppl": math.exp(nll / ho.size), "bpb": nll / math.log(2) / nb}
        tot_nll += nll
        tot_n += ho.size
        tot_b += nb
    uni["all"] = {"ppl": math.exp(tot_nll / tot_n), "bpb": tot_nll / math.log(2) / tot_b}
    meta["unigram_heldout"] = uni
    tr_tok = sum(v["train_tokens"] for v in meta["sources"].values())
    tr_b = sum(v["train_bytes"] for v in meta["sources"].values())
    meta["bytes_per_token_train"] = tr_b / tr_tok
    json.dump(meta, open(os.path.join(a.out, "meta.json"), "w"), indent=1)
    print(f"unigram held-out: ppl {uni['all']['ppl']:.1f}, {uni['all']['bpb']:.3f} bits/byte; "
          f"{tr_b / tr_tok:.2f} bytes/token; {time.time() - t0:.0f} s total", flush=True)


if __name__ == "__main__":
    main()
