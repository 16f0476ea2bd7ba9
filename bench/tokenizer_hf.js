#!/usr/bin/env node
// tokenizer_hf.js — Hugging Face tokenizers' encode throughput on the same
// text as bench_tokenizer.c, for the side-by-side figure of `make bench`.
//
//   node bench/tokenizer_hf.js TEXT_FILE tokenizer.json [REPEATS]
//
// Needs the npm package `tokenizers` 0.23.2 (HF's Rust library with Node
// bindings), pinned in bench/hf/package.json: cd bench/hf && npm ci. Every
// non-empty line is encoded on its own, without special tokens added (as
// bench_tokenizer does). Two figures, best of REPEATS: `encode` awaited line
// by line (includes the binding's per-call Promise cost) and one
// `encodeBatch` of all lines with TOKENIZERS_PARALLELISM=false and
// RAYON_NUM_THREADS=1, i.e. the Rust core on one thread; the faster is the
// one to compare with. Prints figures only.
'use strict';
process.env.TOKENIZERS_PARALLELISM = 'false';
process.env.RAYON_NUM_THREADS = '1';
const fs = require('fs');
const path = require('path');

let tokenizers;
try {
  tokenizers = require(path.join(__dirname, 'hf', 'node_modules', 'tokenizers'));
} catch (e) {
  console.log('hf tokenizers: not installed (cd bench/hf && npm ci); column skipped');
  process.exit(0);
}

function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function main() {
  const [textFile, tokFile, rep] = process.argv.slice(2);
  const repeats = Math.max(1, parseInt(rep || '3', 10));
  const text = fs.readFileSync(textFile);
  const lines = [];
  let bytes = 0;
  for (let i = 0; i < text.length;) {
    let e = text.indexOf(10, i);
    if (e < 0) e = text.length;
    if (e > i) {
      lines.push(text.subarray(i, e).toString('utf8'));
      bytes += e - i;
    }
    i = e + 1;
  }
  const tok = tokenizers.Tokenizer.fromFile(tokFile);
  const opts = { addSpecialTokens: false };
  let nTok = 0, top = 0;
  const figure = (label, secsWall, secsCpu) => {
    const wall = bytes / secsWall / 1e6, cpu = bytes / secsCpu / 1e6;
    top = Math.max(top, wall, cpu);
    console.log(`hf tokenizers 0.23.2 ${label}: ${lines.length} lines, ${bytes} bytes, ` +
                `${nTok} tokens, ${cpu.toFixed(2)} MB/s (CPU time), ${wall.toFixed(2)} MB/s (wall)`);
  };
  let best = Infinity, bestCpu = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint(), c0 = cpuSeconds();
    nTok = 0;
    for (const l of lines) nTok += (await tok.encode(l, null, opts)).getIds().length;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    bestCpu = Math.min(bestCpu, cpuSeconds() - c0);
  }
  figure('encode, line by line', best, bestCpu);
  best = Infinity; bestCpu = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint(), c0 = cpuSeconds();
    const encs = await tok.encodeBatch(lines, opts);
    nTok = 0;
    for (const e of encs) nTok += e.getIds().length;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    bestCpu = Math.min(bestCpu, cpuSeconds() - c0);
  }
  figure('encodeBatch, 1 thread', best, bestCpu);
  // The fastest of the four figures: the ratio is taken against it.
  console.log(`HF_BEST_MBPS ${top.toFixed(3)}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
