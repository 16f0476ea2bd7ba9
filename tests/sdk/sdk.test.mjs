// sdk.test.mjs — mobilellmd through the official OpenAI Node SDK: the SDK
// must need nothing special. Expected values come from the daemon itself
// (streamed vs non-streamed, one call vs another) or from the OpenAI
// contract (shapes, typed errors, retries), never from hard-coded output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const A = process.env.MLLMD_URL_A;
const B = process.env.MLLMD_URL_B;
const KEY = process.env.MLLMD_KEY;
assert.ok(A && B && KEY, 'run through tests/sdk/run.sh');

const client = new OpenAI({ baseURL: `${A}/v1`, apiKey: KEY, maxRetries: 0 });
const GREEDY = { temperature: 0 };

async function collectCompletion(stream) {
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices ?? []) {
      text += c.text ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage };
}

async function collectChat(stream) {
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices ?? []) {
      if (c.delta?.role) role = c.delta.role;
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, role, finish, usage };
}

test('models.list and retrieve', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['hermes', 'st', 'think', 'tiny']);
  const m = await client.models.retrieve('st');
  assert.equal(m.id, 'st');
  assert.equal(m.object, 'model');
});

test('completions: streamed text equals non-streamed (greedy), usage', async () => {
  for (const prompt of ['Once upon a time', 'The cat sat', 'Tom had a red ball']) {
    const r = await client.completions.create({ model: 'st', prompt, max_tokens: 24, ...GREEDY });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices.length, 1);
    const u = r.usage;
    assert.ok(u.completion_tokens > 0 && u.prompt_tokens > 0);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    const s = await client.completions.create({
      model: 'st', prompt, max_tokens: 24, ...GREEDY, stream: true,
      stream_options: { include_usage: true },
    });
    const got = await collectCompletion(s);
    assert.equal(got.text, r.choices[0].text);
    assert.equal(got.finish, r.choices[0].finish_reason);
    for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) assert.equal(got.usage[k], u[k]);
  }
});

test('completions: n, echo, token prompts, logprobs', async () => {
  const base = { model: 'st', max_tokens: 8, ...GREEDY };
  const r = await client.completions.create({ ...base, prompt: 'Once upon a time', n: 2 });
  assert.equal(r.choices.length, 2);
  assert.equal(r.choices[0].text, r.choices[1].text); // greedy: identical choices
  const e = await client.completions.create({ ...base, prompt: 'Once upon a time', echo: true });
  assert.ok(e.choices[0].text.startsWith('Once upon a time'));
  assert.ok(e.choices[0].text.endsWith(r.choices[0].text));
  const two = await client.completions.create({ ...base, prompt: ['Once upon a time', 'The cat'] });
  assert.equal(two.choices.length, 2);
  assert.equal(two.choices[0].text, r.choices[0].text);
  const lp = await client.completions.create({ ...base, prompt: 'Once upon a time', logprobs: 3 });
  const L = lp.choices[0].logprobs;
  assert.equal(L.tokens.length, lp.usage.completion_tokens);
  assert.equal(L.token_logprobs.length, L.tokens.length);
  assert.equal(L.top_logprobs.length, L.tokens.length);
  assert.equal(L.text_offset.length, L.tokens.length);
  assert.ok(L.token_logprobs.every((x) => x <= 0));
  assert.ok(L.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 3));
  assert.equal(L.tokens.join(''), lp.choices[0].text);
});

test('chat: streamed deltas equal the message (greedy), usage chunk', async () => {
  const messages = [
    { role: 'system', content: 'You tell short stories.' },
    { role: 'user', content: 'Tell me about a dog.' },
  ];
  const r = await client.chat.completions.create({ model: 'st', messages, max_tokens: 20, ...GREEDY });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  const s = await client.chat.completions.create({
    model: 'st', messages, max_tokens: 20, ...GREEDY, stream: true,
    stream_options: { include_usage: true },
  });
  const got = await collectChat(s);
  assert.equal(got.role, 'assistant');
  assert.equal(got.text, r.choices[0].message.content);
  assert.equal(got.finish, r.choices[0].finish_reason);
  // cached_tokens may differ: the second call reuses the first's prefix.
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) assert.equal(got.usage[k], r.usage[k]);
  // max_completion_tokens is accepted as max_tokens
  const m = await client.chat.completions.create({ model: 'st', messages, max_completion_tokens: 3, ...GREEDY });
  assert.ok(m.usage.completion_tokens <= 3);
});

test('chat: reasoning split fields read through the SDK', async () => {
  const m = await client.models.retrieve('think');
  assert.equal(m.reasoning_format, 'split');
  assert.match(m.chat_template, /^file:.*think\.jinja$/);
  const body = { model: 'think', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, ...GREEDY };
  const r = await client.chat.completions.create(body);
  const msg = r.choices[0].message;
  // The template opened <think>: every token is reasoning, and a budget
  // that ends inside it leaves the answer empty, finish_reason length.
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(msg.content, '');
  assert.equal(typeof msg.reasoning_content, 'string');
  assert.ok(msg.reasoning_content.length > 0);
  assert.equal(msg.reasoning, msg.reasoning_content);
  assert.equal(r.usage.completion_tokens_details.reasoning_tokens, r.usage.completion_tokens);
  const s = await client.chat.completions.create({
    ...body, stream: true, stream_options: { include_usage: true },
  });
  let reasoning = '';
  let reasoning2 = '';
  let content = '';
  let usage = null;
  for await (const chunk of s) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices ?? []) {
      reasoning += c.delta?.reasoning_content ?? '';
      reasoning2 += c.delta?.reasoning ?? '';
      content += c.delta?.content ?? '';
    }
  }
  assert.equal(reasoning, msg.reasoning_content);
  assert.equal(reasoning2, msg.reasoning_content);
  assert.equal(content, '');
  assert.equal(usage.completion_tokens_details.reasoning_tokens, usage.completion_tokens);
});

test('chat: logprobs with top_logprobs', async () => {
  const r = await client.chat.completions.create({
    model: 'st', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, ...GREEDY,
    logprobs: true, top_logprobs: 2,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const c of content) {
    assert.equal(typeof c.token, 'string');
    assert.ok(c.logprob <= 0);
    assert.equal(c.top_logprobs.length, 2);
  }
  // The tokens concatenate to the content exactly, streamed and not.
  assert.equal(content.map((c) => c.token).join(''), r.choices[0].message.content);
  const stream = await client.chat.completions.create({
    model: 'st', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, ...GREEDY,
    logprobs: true, stream: true,
  });
  let text = '';
  let toks = '';
  for await (const ch of stream) {
    text += ch.choices[0]?.delta?.content ?? '';
    toks += (ch.choices[0]?.logprobs?.content ?? []).map((c) => c.token).join('');
  }
  assert.equal(text, r.choices[0].message.content);
  assert.equal(toks, text);
});

test('errors surface as the SDK typed errors', async () => {
  await assert.rejects(
    client.completions.create({ model: 'st', prompt: 'x', max_tokens: -1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.error?.param != null,
  );
  await assert.rejects(
    client.completions.create({ model: 'no-such-model', prompt: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
  await assert.rejects(client.models.retrieve('no-such-model'), (e) => e instanceof OpenAI.NotFoundError);
  const bad = new OpenAI({ baseURL: `${A}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(
    bad.completions.create({ model: 'st', prompt: 'x' }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
  );
  await assert.rejects(
    client.completions.create({ model: 'st', prompt: 'x', suffix: 'y' }),
    (e) => e instanceof OpenAI.BadRequestError && /suffix/.test(e.message),
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'st', messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError,
  );
  await assert.rejects(
    client.completions.create({ model: 'st', prompt: 'x'.repeat(5000), max_tokens: 500 }),
    (e) => e instanceof OpenAI.BadRequestError,
  );
});

// Daemon B holds one running and one queued request at most: with two
// long streams in place, a third request gets 503 + Retry-After. The SDK
// must retry it; once it has seen the 503 we release the blockers, and the
// retry succeeds.
test('retries on 503 with Retry-After', async () => {
  const blockers = [new AbortController(), new AbortController()];
  const body = JSON.stringify({ model: 'tiny', prompt: 'Hello', max_tokens: 1800, stream: true, temperature: 0 });
  const gauges = async () => {
    const t = await (await fetch(`${B}/metrics`)).text();
    return {
      running: Number(/^mllm_running_sequences\{model="tiny"\} (\d+)/m.exec(t)?.[1] ?? 0),
      queued: Number(/^mllm_queue_depth\{model="tiny"\} (\d+)/m.exec(t)?.[1] ?? 0),
    };
  };
  const until = async (pred) => {
    for (let i = 0; i < 400; i++) {
      if (pred(await gauges())) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail(`gauges never reached the state: ${JSON.stringify(await gauges())}`);
  };
  const block = (ac) =>
    fetch(`${B}/v1/completions`, {
      method: 'POST', body, signal: ac.signal,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    }).then(async (r) => {
      try { for await (const _ of r.body) { /* drain */ } } catch { /* aborted */ }
    }).catch(() => {});
  // One running, then one queued behind it: the queue is full.
  const started = [block(blockers[0])];
  await until((g) => g.running >= 1 && g.queued === 0);
  started.push(block(blockers[1]));
  await until((g) => g.running >= 1 && g.queued >= 1);
  const statuses = [];
  const sdk = new OpenAI({
    baseURL: `${B}/v1`, apiKey: KEY, maxRetries: 3,
    fetch: async (url, init) => {
      const r = await fetch(url, init);
      statuses.push(r.status);
      if (r.status === 503) {
        // The daemon's retry_after_s (2, set in run.sh), not a constant.
        assert.equal(r.headers.get('retry-after'), '2', '503 without the configured Retry-After');
        blockers.forEach((ac) => ac.abort());
      }
      return r;
    },
  });
  const r = await sdk.completions.create({ model: 'tiny', prompt: 'Hi', max_tokens: 4, ...GREEDY });
  assert.equal(r.choices.length, 1);
  assert.equal(statuses[0], 503, `statuses: ${statuses}`);
  assert.equal(statuses[statuses.length - 1], 200);
  blockers.forEach((ac) => ac.abort());
  await Promise.all(started);
  const t = await (await fetch(`${B}/metrics`)).text();
  assert.match(t, /^mllm_requests_total\{status="503"\} [1-9]/m);
});
