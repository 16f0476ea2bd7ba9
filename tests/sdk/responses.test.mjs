// responses.test.mjs — POST /v1/responses and its state through the
// official OpenAI Node SDK (responses.create / parse / stream, retrieve,
// delete, inputItems, error classes) and through the Vercel AI SDK's
// default OpenAI provider (@ai-sdk/openai, whose models call Responses).
// The conversation state is checked for what it is for: a chain of turns
// linked by previous_response_id whose prompts come from the prefix cache
// (cached_tokens covers the previous turn, /metrics counts the reuse), and
// a store that keeps to its limits (daemon C: responses_store_max = 3,
// responses_store_bytes = 16k).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { zodTextFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { generateText, streamText } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';

const A = process.env.MLLMD_URL_A;
const C = process.env.MLLMD_URL_C;
const KEY = process.env.MLLMD_KEY;
assert.ok(A && C && KEY, 'run through tests/sdk/run.sh');
const client = new OpenAI({ baseURL: `${A}/v1`, apiKey: KEY, maxRetries: 0 });
const small = new OpenAI({ baseURL: `${C}/v1`, apiKey: KEY, maxRetries: 0 });
const BLOCK = 16; // the fixture daemons' kv_block_size (the default)

const messageText = (r) =>
  r.output
    .filter((it) => it.type === 'message')
    .flatMap((it) => it.content)
    .filter((p) => p.type === 'output_text')
    .map((p) => p.text)
    .join('');

// A /metrics value: name alone, or with a model label (per-model series).
async function metric(url, name, model) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const want = model ? `${name}{model="${model}"} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(want));
  assert.ok(line, `metric ${name} missing`);
  return Number(line.split(' ').pop());
}

test('responses.create with a string input and instructions', async () => {
  const r = await client.responses.create({
    model: 'tiny',
    instructions: 'Answer in one short sentence.',
    input: 'What is the capital of Norway?',
    max_output_tokens: 12,
    temperature: 0,
  });
  assert.match(r.id, /^resp_[0-9a-f]{40}$/);
  assert.equal(r.object, 'response');
  assert.ok(['completed', 'incomplete'].includes(r.status));
  if (r.status === 'incomplete') assert.equal(r.incomplete_details.reason, 'max_output_tokens');
  assert.equal(r.instructions, 'Answer in one short sentence.');
  assert.equal(r.output[0].type, 'message');
  assert.equal(r.output[0].role, 'assistant');
  assert.equal(r.output_text, messageText(r));
  assert.ok(r.output_text.length > 0);
  assert.ok(r.usage.input_tokens > 10);
  assert.ok(r.usage.output_tokens > 0 && r.usage.output_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  assert.equal(r.usage.input_tokens_details.cached_tokens >= 0, true);
  assert.equal(r.usage.output_tokens_details.reasoning_tokens, 0);
  // Greedy and stateless: the same request gives the same text.
  const again = await client.responses.create({
    model: 'tiny',
    instructions: 'Answer in one short sentence.',
    input: 'What is the capital of Norway?',
    max_output_tokens: 12,
    temperature: 0,
    store: false,
  });
  assert.equal(again.output_text, r.output_text);
  assert.notEqual(again.id, r.id);
});

test('responses.create with message items (parts, roles) equals the string form', async () => {
  const items = await client.responses.create({
    model: 'tiny',
    input: [
      { role: 'developer', content: 'Be brief.' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello' }] },
      { role: 'assistant', content: [{ type: 'output_text', text: 'Hi.' }] },
      { role: 'user', content: 'Name a colour.' },
    ],
    max_output_tokens: 8,
    temperature: 0,
  });
  assert.ok(items.output_text.length > 0);
  const list = await client.responses.inputItems.list(items.id, { order: 'asc' });
  const got = [];
  for await (const it of list) got.push(it);
  assert.deepEqual(got.map((it) => it.role), ['developer', 'user', 'assistant', 'user']);
  assert.equal(got[1].content[0].type, 'input_text');
  assert.equal(got[1].content[0].text, 'Hello');
  assert.equal(got[2].content[0].type, 'output_text');
  for (const it of got) assert.match(it.id, /^msg_/);
  // The single string input renders as the one user message it means.
  const a = await client.responses.create({ model: 'tiny', input: 'Name a colour.', max_output_tokens: 8, temperature: 0, store: false });
  const b = await client.responses.create({
    model: 'tiny', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Name a colour.' }] }],
    max_output_tokens: 8, temperature: 0, store: false,
  });
  assert.equal(a.output_text, b.output_text);
  assert.equal(a.usage.input_tokens, b.usage.input_tokens);
});

test('unsupported input and tools are a 400 naming the parameter', async () => {
  await assert.rejects(
    client.responses.create({
      model: 'tiny',
      input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }],
    }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'input[0].content[0]',
  );
  await assert.rejects(
    client.responses.create({ model: 'tiny', input: 'x', tools: [{ type: 'web_search' }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'tools[0].type',
  );
  await assert.rejects(
    client.responses.create({ model: 'tiny', input: 'x', background: true }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'background',
  );
});

test('responses.parse with a zod text.format gives output_parsed', async () => {
  const Pet = z.object({ kind: z.enum(['cat', 'dog', 'fish']), legs: z.number().int().min(0).max(4), name: z.string().max(8) });
  for (const seed of [1, 2, 3]) {
    const r = await client.responses.parse({
      model: 'tiny',
      input: `Describe pet ${seed} as JSON.`,
      text: { format: zodTextFormat(Pet, 'pet') },
      max_output_tokens: 120,
      temperature: 1,
    });
    assert.equal(r.status, 'completed');
    assert.deepEqual(Pet.parse(r.output_parsed), r.output_parsed);
    assert.deepEqual(JSON.parse(r.output_text), r.output_parsed);
  }
});

test('responses.stream: typed events with sequence numbers, helpers and the final response', async () => {
  const deltas = [];
  const types = [];
  const seqs = [];
  const stream = client.responses.stream({
    model: 'tiny',
    input: 'Tell me a story.',
    max_output_tokens: 16,
    temperature: 0,
  });
  stream.on('response.output_text.delta', (e) => deltas.push(e.delta));
  stream.on('event', (e) => {
    types.push(e.type);
    seqs.push(e.sequence_number);
  });
  const final = await stream.finalResponse();
  assert.deepEqual(seqs, seqs.map((_, i) => i));
  assert.equal(types[0], 'response.created');
  assert.equal(types[1], 'response.in_progress');
  assert.ok(['response.completed', 'response.incomplete'].includes(types.at(-1)));
  for (const t of ['response.output_item.added', 'response.content_part.added', 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done'])
    assert.equal(types.filter((x) => x === t).length, 1, t);
  assert.equal(deltas.join(''), final.output_text);
  assert.ok(final.output_text.length > 0);
  // Streamed and not, greedy: the same text; the streamed one is stored.
  const plain = await client.responses.create({ model: 'tiny', input: 'Tell me a story.', max_output_tokens: 16, temperature: 0, store: false });
  assert.equal(plain.output_text, final.output_text);
  const stored = await client.responses.retrieve(final.id);
  assert.equal(stored.output_text, final.output_text);
  assert.deepEqual(stored.usage, final.usage);
});

test('a thinking template reports reasoning items, streamed and not', async () => {
  // "think" opens <think> in its generation prompt: the output is reasoning
  // until "</think>", so a short answer is reasoning only.
  const body = { model: 'think', input: 'Hi', max_output_tokens: 12, temperature: 0 };
  const r = await client.responses.create(body);
  assert.equal(r.output[0].type, 'reasoning');
  assert.ok(r.output[0].content[0].text.length > 0);
  assert.equal(r.usage.output_tokens_details.reasoning_tokens, r.usage.output_tokens);
  // cut by max_output_tokens inside the reasoning: that item is incomplete,
  // and no (empty) message item follows it
  assert.equal(r.status, 'incomplete');
  assert.equal(r.output.length, 1);
  assert.equal(r.output[0].status, 'incomplete');
  const deltas = [];
  const events = [];
  const stream = client.responses.stream(body);
  stream.on('response.reasoning_text.delta', (e) => deltas.push(e.delta));
  stream.on('event', (e) => events.push(e));
  const final = await stream.finalResponse();
  assert.equal(deltas.join(''), r.output[0].content[0].text);
  assert.deepEqual(final.output.map((it) => it.type), r.output.map((it) => it.type));
  assert.equal(final.output[0].content[0].text, r.output[0].content[0].text);
  // The reasoning item opens empty, its part comes with content_part.added
  // and fills through the deltas (a snapshot never holds text twice).
  const rsId = events.find((e) => e.type === 'response.output_item.added' && e.item.type === 'reasoning').item.id;
  const rs = events.filter((e) => e.item_id === rsId || e.item?.id === rsId);
  const kinds = rs.map((e) => e.type);
  const firstDelta = kinds.indexOf('response.reasoning_text.delta');
  assert.equal(kinds[0], 'response.output_item.added');
  assert.deepEqual(rs[0].item.content, []);
  assert.equal(kinds[1], 'response.content_part.added');
  assert.deepEqual(rs[1].part, { type: 'reasoning_text', text: '' });
  assert.ok(firstDelta > 1);
  assert.deepEqual(kinds.slice(-3), ['response.reasoning_text.done', 'response.content_part.done',
    'response.output_item.done']);
  assert.equal(rs.at(-2).part.text, r.output[0].content[0].text);
  assert.equal(rs.at(-1).item.status, 'incomplete');
  assert.ok(!events.some((e) => e.type === 'response.output_item.added' && e.item.type === 'message'));
  assert.deepEqual(final.output, r.output.map((it) => ({ ...it, id: final.output[0].id })));
});

test('reasoning.summary asked: the reasoning is its summary, streamed and not, and reaches the Vercel AI SDK', async () => {
  const body = { model: 'think', input: 'Hi', max_output_tokens: 12, temperature: 0, reasoning: { summary: 'detailed' } };
  const r = await client.responses.create(body);
  const rs = r.output[0];
  assert.equal(rs.type, 'reasoning');
  assert.deepEqual(rs.summary, [{ type: 'summary_text', text: rs.content[0].text }]);
  const deltas = [];
  const kinds = [];
  const stream = client.responses.stream(body);
  stream.on('response.reasoning_summary_text.delta', (e) => deltas.push(e.delta));
  stream.on('event', (e) => kinds.push(e.type));
  const fin = await stream.finalResponse();
  assert.equal(deltas.join(''), rs.content[0].text);
  assert.deepEqual(fin.output[0].summary, rs.summary);
  for (const k of ['response.reasoning_summary_part.added', 'response.reasoning_summary_text.done',
    'response.reasoning_summary_part.done'])
    assert.ok(kinds.includes(k), k);
  // without the ask: no summary
  const plain = await client.responses.create({ ...body, reasoning: undefined });
  assert.deepEqual(plain.output[0].summary, []);
  await assert.rejects(client.responses.create({ ...body, reasoning: { summary: 'long' } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'reasoning.summary');
  // The AI SDK drops temperature for reasoning models (forceReasoning), so
  // its answer is sampled: compare with what the daemon stored for it.
  const v = await generateText({
    model: openai('think'), prompt: 'Hi', temperature: 0, maxOutputTokens: 12, maxRetries: 0,
    providerOptions: { openai: { reasoningSummary: 'detailed', forceReasoning: true } },
  });
  const stored = await client.responses.retrieve(v.response.id);
  assert.ok(v.reasoningText.length > 0);
  assert.equal(v.reasoningText, stored.output[0].summary[0].text);
  assert.equal(v.reasoningText, stored.output[0].content[0].text);
});

test('a continuation that names no model stays on the conversation\'s model', async () => {
  // "think" is not the default model: without the previous response's model
  // the next turn would move to "tiny" (its template, its tokenizer).
  const first = await client.responses.create({ model: 'think', input: 'Hi', max_output_tokens: 4, temperature: 0 });
  assert.equal(first.model, 'think');
  const next = await client.responses.create({ previous_response_id: first.id, input: 'And?', max_output_tokens: 4, temperature: 0 });
  assert.equal(next.model, 'think');
  assert.ok(next.usage.input_tokens_details.cached_tokens > 0);
  const count = await client.responses.inputTokens.count({ previous_response_id: first.id, input: 'And?' });
  assert.equal(count.input_tokens, next.usage.input_tokens);
  // Naming a model still wins.
  const other = await client.responses.create({ model: 'tiny', previous_response_id: first.id, input: 'And?', max_output_tokens: 4 });
  assert.equal(other.model, 'tiny');
});

test('function tools: function_call → function_call_output → answer', async () => {
  const tools = [
    {
      type: 'function',
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', maxLength: 10 } },
        required: ['city'],
        additionalProperties: false,
      },
      strict: true,
    },
    { type: 'function', name: 'noop', parameters: { type: 'object', properties: {}, additionalProperties: false } },
  ];
  const first = await client.responses.create({
    model: 'tiny',
    input: 'What is the weather in Oslo?',
    tools,
    tool_choice: { type: 'function', name: 'get_weather' },
    max_output_tokens: 60,
    temperature: 0,
  });
  assert.equal(first.status, 'completed');
  const call = first.output.find((it) => it.type === 'function_call');
  assert.ok(call, JSON.stringify(first.output));
  assert.equal(call.name, 'get_weather');
  assert.match(call.call_id, /^call_/);
  const args = JSON.parse(call.arguments);
  assert.equal(typeof args.city, 'string');
  assert.ok(args.city.length <= 10);
  assert.equal(first.output_text, '');

  // The result goes back as a function_call_output of the stored chain.
  const answer = await client.responses.create({
    model: 'tiny',
    previous_response_id: first.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: JSON.stringify({ temp_c: 7 }) }],
    tools,
    max_output_tokens: 12,
    temperature: 0,
  });
  assert.equal(answer.output[0].type, 'message');
  assert.ok(answer.output_text.length > 0);
  assert.equal(answer.previous_response_id, first.id);
  // The stored conversation: the user's question, the call, its output.
  assert.ok(answer.usage.input_tokens > 20);

  // Stateless: the whole exchange resent as items gives the same answer.
  const resent = await client.responses.create({
    model: 'tiny',
    input: [
      { role: 'user', content: 'What is the weather in Oslo?' },
      { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
      { type: 'function_call_output', call_id: call.call_id, output: JSON.stringify({ temp_c: 7 }) },
    ],
    tools,
    max_output_tokens: 12,
    temperature: 0,
    store: false,
  });
  assert.ok(resent.output_text.length > 0);

  // tool_choice required, streamed: the call arrives as its events.
  const types = [];
  const stream = client.responses.stream({
    model: 'tiny', input: 'Weather in Lima?', tools, tool_choice: 'required', parallel_tool_calls: false,
    max_output_tokens: 60, temperature: 0,
  });
  stream.on('event', (e) => types.push(e.type));
  const done = await stream.finalResponse();
  const c2 = done.output.find((it) => it.type === 'function_call');
  assert.ok(c2);
  assert.ok(['get_weather', 'noop'].includes(c2.name));
  JSON.parse(c2.arguments);
  assert.ok(types.includes('response.function_call_arguments.delta'));
  assert.ok(types.includes('response.function_call_arguments.done'));
});

test('a template with a call syntax: the forced call is a function_call item', async () => {
  // "hermes" is chatted with Qwen3's template (<tool_call> syntax). With
  // parallel calls allowed the random model calls until max_output_tokens
  // (an incomplete call leaves the text as text), so one call is asked for.
  const tools = [
    { type: 'function', name: 'add', parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'], additionalProperties: false } },
    { type: 'function', name: 'noop', parameters: { type: 'object', properties: {}, additionalProperties: false } },
  ];
  const body = {
    model: 'hermes', input: 'Add 2 and 3.', tools, tool_choice: 'required', parallel_tool_calls: false,
    max_output_tokens: 200, temperature: 0,
  };
  const r = await client.responses.create(body);
  const calls = r.output.filter((it) => it.type === 'function_call');
  assert.equal(calls.length, 1, JSON.stringify(r.output));
  assert.equal(r.output.at(-1).type, 'function_call');
  assert.equal(new Set(calls.map((c) => c.call_id)).size, calls.length);
  assert.equal(new Set(calls.map((c) => c.id)).size, calls.length);
  for (const c of calls) {
    assert.ok(['add', 'noop'].includes(c.name));
    JSON.parse(c.arguments);
  }
  const stream = client.responses.stream(body);
  const final = await stream.finalResponse();
  assert.deepEqual(final.output.map((it) => [it.type, it.name, it.arguments]),
    r.output.map((it) => [it.type, it.name, it.arguments]));
  // The next turn sends every result back.
  const next = await client.responses.create({
    model: 'hermes', previous_response_id: r.id, tools, max_output_tokens: 16, temperature: 0,
    input: calls.map((c) => ({ type: 'function_call_output', call_id: c.call_id, output: '5' })),
  });
  assert.ok(['completed', 'incomplete'].includes(next.status));
});

test('previous_response_id: 5 turns whose prompts come from the prefix cache', async () => {
  const reusedBefore = await metric(A, 'mllm_prefix_cache_reused_tokens_total', 'tiny');
  let prev = null;
  let prevTotal = 0;
  let lastCached = -1;
  let sumCached = 0;
  const ids = [];
  for (let turn = 1; turn <= 5; turn++) {
    const r = await client.responses.create({
      model: 'tiny',
      instructions: 'You are a patient assistant.',
      input: `Turn ${turn}: tell me one more thing about the list we are writing together.`,
      previous_response_id: prev ?? undefined,
      max_output_tokens: 10,
      temperature: 0,
    });
    const cached = r.usage.input_tokens_details.cached_tokens;
    if (prev) {
      assert.equal(r.previous_response_id, prev);
      // The conversation is the prompt's head: the stored tokens (all but
      // the last generated one went through the model) are reused in
      // whole KV blocks, never prefilled again.
      assert.ok(r.usage.input_tokens > prevTotal, `turn ${turn}: input ${r.usage.input_tokens}`);
      assert.ok(cached >= prevTotal - 1 - BLOCK, `turn ${turn}: cached ${cached}, previous total ${prevTotal}`);
      assert.ok(cached > lastCached, `turn ${turn}: cached ${cached} after ${lastCached}`);
    }
    // Every response of one conversation carries the same affinity key.
    if (ids.length) assert.equal(r.id.slice(0, 21), ids[0].slice(0, 21));
    ids.push(r.id);
    sumCached += cached;
    lastCached = cached;
    prevTotal = r.usage.total_tokens;
    prev = r.id;
  }
  const reusedAfter = await metric(A, 'mllm_prefix_cache_reused_tokens_total', 'tiny');
  assert.ok(reusedAfter - reusedBefore >= sumCached, `metrics ${reusedAfter - reusedBefore} < ${sumCached}`);
  // The last response's items are only its own input.
  const items = await client.responses.inputItems.list(prev);
  assert.equal(items.data.length, 1);
  assert.match(items.data[0].content[0].text, /^Turn 5:/);
});

test('responses.inputTokens.count: the input_tokens a response to the same body is billed', async () => {
  const tools = [
    {
      type: 'function',
      name: 'lookup',
      description: 'Find a word',
      parameters: { type: 'object', properties: { word: { type: 'string' } }, required: ['word'] },
    },
  ];
  const body = { model: 'tiny', instructions: 'Be brief.', input: 'Name three rivers.', tools };
  const counted = await client.responses.inputTokens.count(body);
  assert.equal(counted.object, 'response.input_tokens');
  const r = await client.responses.create({ ...body, max_output_tokens: 4, temperature: 0 });
  assert.equal(counted.input_tokens, r.usage.input_tokens);
  // A template that shows the tools counts them: without them it is fewer.
  const withTools = await client.responses.inputTokens.count({ ...body, model: 'hermes' });
  const bare = await client.responses.inputTokens.count({ ...body, model: 'hermes', tools: undefined });
  assert.ok(bare.input_tokens < withTools.input_tokens, `${bare.input_tokens} vs ${withTools.input_tokens}`);
  // A continuation counts the stored conversation too, as its response does.
  const next = { model: 'tiny', previous_response_id: r.id, input: 'And three lakes?' };
  const c2 = await client.responses.inputTokens.count(next);
  const r2 = await client.responses.create({ ...next, max_output_tokens: 4, temperature: 0 });
  assert.equal(c2.input_tokens, r2.usage.input_tokens);
  assert.ok(c2.input_tokens > r.usage.total_tokens - 1);
  // An input past the context is counted, not refused ("does it fit?").
  const n_ctx = (await client.models.retrieve('tiny')).max_model_len;
  assert.ok(n_ctx > 0);
  const long = await client.responses.inputTokens.count({ model: 'tiny', input: 'word '.repeat(n_ctx) });
  assert.ok(long.input_tokens > n_ctx, `${long.input_tokens} vs ${n_ctx}`);
  // The same errors as responses.create.
  await assert.rejects(client.responses.inputTokens.count({ model: 'tiny' }), (e) => e instanceof OpenAI.BadRequestError && e.param === 'input');
  await assert.rejects(client.responses.inputTokens.count({ model: 'nope', input: 'x' }), OpenAI.NotFoundError);
  await assert.rejects(
    client.responses.inputTokens.count({ model: 'tiny', previous_response_id: 'resp_missing', input: 'x' }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'previous_response_not_found',
  );
  await assert.rejects(
    client.responses.inputTokens.count({ model: 'tiny', input: 'x', tools: [{ type: 'web_search' }] }),
    OpenAI.BadRequestError,
  );
  // A schema a response would refuse is refused here too.
  const format = { type: 'json_schema', name: 'x', schema: { type: 'object', not: { type: 'null' } } };
  await assert.rejects(client.responses.create({ model: 'tiny', input: 'x', text: { format } }), OpenAI.BadRequestError);
  await assert.rejects(client.responses.inputTokens.count({ model: 'tiny', input: 'x', text: { format } }), OpenAI.BadRequestError);
});

test('include message.output_text.logprobs: entries that join to the text, streamed and not', async () => {
  const body = {
    model: 'tiny', input: 'Hi', max_output_tokens: 6, temperature: 0,
    include: ['message.output_text.logprobs'], top_logprobs: 2,
  };
  const r = await client.responses.create(body);
  // top_logprobs is echoed, and leaves the echoed max_output_tokens alone
  assert.equal(r.max_output_tokens, 6);
  assert.equal(r.top_logprobs, 2);
  const part = r.output.find((o) => o.type === 'message').content[0];
  assert.equal(part.logprobs.length, r.usage.output_tokens);
  assert.equal(part.logprobs.map((e) => e.token).join(''), part.text);
  for (const e of part.logprobs) {
    assert.ok(e.logprob <= 0);
    assert.equal(e.top_logprobs.length, 2);
    assert.deepEqual(e.bytes, [...Buffer.from(e.token)]);
  }
  // Streamed: each delta carries the entries of the text it releases; they
  // add up to the list on output_text.done and in the final response.
  const s = client.responses.stream(body);
  let done = null;
  const fromDeltas = [];
  for await (const ev of s) {
    if (ev.type === 'response.output_text.delta') fromDeltas.push(...ev.logprobs);
    if (ev.type === 'response.output_text.done') done = ev;
  }
  const fin = await s.finalResponse();
  assert.deepEqual(done.logprobs, part.logprobs);
  assert.deepEqual(fromDeltas, part.logprobs);
  assert.deepEqual(fin.output.find((o) => o.type === 'message').content[0].logprobs, part.logprobs);
  // Without include: none.
  const plain = await client.responses.create({ ...body, include: undefined });
  assert.deepEqual(plain.output.find((o) => o.type === 'message').content[0].logprobs, []);
  assert.equal(plain.top_logprobs, 2);
  const none = await client.responses.create({ ...body, include: undefined, top_logprobs: undefined });
  assert.equal(none.top_logprobs, 0);
});

test('the echo repeats the numbers sent, and a retrieve gives back the response as answered', async () => {
  const body = {
    model: 'tiny', input: 'Hi', max_output_tokens: 5, temperature: 0.7, top_p: 0.95, seed: 3,
    include: ['message.output_text.logprobs'], top_logprobs: 2,
  };
  const r = await client.responses.create(body);
  assert.equal(r.temperature, 0.7);
  assert.equal(r.top_p, 0.95);
  assert.deepEqual(await client.responses.retrieve(r.id), r);
  // streamed: the final response, logprobs included, is what a retrieve gives
  const s = client.responses.stream(body);
  for await (const _ of s);
  const fin = await s.finalResponse();
  const got = await client.responses.retrieve(fin.id);
  // (the SDK's stream adds parsed: null to each text part)
  const plain = (o) => JSON.parse(JSON.stringify(o, (k, v) => (k === 'parsed' ? undefined : v)));
  assert.deepEqual(plain(got.output), plain(fin.output));
  assert.equal(got.temperature, 0.7);
  // not sent: the defaults in use
  const d = await client.responses.create({ model: 'tiny', input: 'Hi', max_output_tokens: 2 });
  assert.equal(d.temperature, 1);
  assert.equal(d.top_p, 1);
  // max_tool_calls (OpenAI's cap on built-in tool calls): checked and echoed
  assert.equal(d.max_tool_calls, null);
  assert.equal((await client.responses.create({ model: 'tiny', input: 'Hi', max_output_tokens: 2, max_tool_calls: 2 })).max_tool_calls, 2);
  await assert.rejects(client.responses.create({ model: 'tiny', input: 'Hi', max_tool_calls: 0 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'max_tool_calls');
  // an integral real is an integer here as everywhere
  assert.equal((await client.responses.create({ model: 'tiny', input: 'Hi', max_output_tokens: 2, max_tool_calls: 2.0 })).max_tool_calls, 2);
  // reasoning: OpenAI's two fields echoed, the effort checked
  assert.deepEqual(d.reasoning, { effort: null, summary: null });
  const re = await client.responses.create({ model: 'tiny', input: 'Hi', max_output_tokens: 2, reasoning: { effort: 'low', extra: 1 } });
  assert.deepEqual(re.reasoning, { effort: 'low', summary: null });
  await assert.rejects(client.responses.create({ model: 'tiny', input: 'Hi', reasoning: { effort: 'bogus' } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'reasoning.effort');
});

test('retrieve, delete, input_items and the error classes of unknown ids', async () => {
  const r = await client.responses.create({ model: 'tiny', input: 'Keep this.', max_output_tokens: 6, temperature: 0, metadata: { k: 'v' } });
  const got = await client.responses.retrieve(r.id);
  assert.equal(got.id, r.id);
  assert.equal(got.output_text, r.output_text);
  assert.deepEqual(got.metadata, { k: 'v' });
  // Replaying the events is not supported: a clear 400, not a plain body
  // that the SDK's stream would read as no events at all.
  await assert.rejects(
    (async () => { for await (const _ of await client.responses.retrieve(r.id, { stream: true })) ; })(),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'stream',
  );
  // "stream off" in any spelling is a plain retrieve
  for (const q of ['false', 'False', '0', '']) {
    const res = await fetch(`${A}/v1/responses/${r.id}?stream=${q}`, { headers: { Authorization: `Bearer ${KEY}` } });
    assert.equal(res.status, 200, q);
    assert.equal((await res.json()).id, r.id);
  }
  assert.equal(r.max_output_tokens, 6);
  const page = await client.responses.inputItems.list(r.id, { limit: 1 });
  assert.equal(page.data.length, 1);
  assert.equal(page.data[0].content[0].text, 'Keep this.');
  // Only background responses can be cancelled (none run here): a stored,
  // finished one is a 400 that leaves it stored; an unknown id a 404.
  await assert.rejects(client.responses.cancel(r.id), (e) => e instanceof OpenAI.BadRequestError && /background/.test(e.message));
  assert.equal((await client.responses.retrieve(r.id)).id, r.id);
  await client.responses.delete(r.id);
  await assert.rejects(client.responses.cancel(r.id), (e) => e instanceof OpenAI.NotFoundError && e.param === 'response_id');
  await assert.rejects(client.responses.retrieve(r.id), OpenAI.NotFoundError);
  await assert.rejects(client.responses.delete(r.id), OpenAI.NotFoundError);
  await assert.rejects(client.responses.inputItems.list(r.id), OpenAI.NotFoundError);
  // responses.compact() is not served: a 404 that says so, not a 405
  await assert.rejects(
    client.responses.compact({ model: 'tiny', input: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && /compact/.test(e.message),
  );
  await assert.rejects(
    client.responses.create({ model: 'tiny', input: 'x', previous_response_id: r.id }),
    (e) =>
      e instanceof OpenAI.BadRequestError &&
      e.param === 'previous_response_id' &&
      e.code === 'previous_response_not_found',
  );
  await assert.rejects(
    client.responses.create({ model: 'tiny', input: 'x', previous_response_id: 'resp_never' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'previous_response_id',
  );
  // store: false is not kept.
  const gone = await client.responses.create({ model: 'tiny', input: 'x', max_output_tokens: 2, store: false });
  await assert.rejects(client.responses.retrieve(gone.id), OpenAI.NotFoundError);
});

test('the store keeps to its count and byte limits; evicted ids answer 404', async () => {
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const r = await small.responses.create({ model: 'tiny', input: `small ${i}`, max_output_tokens: 4, temperature: 0 });
    ids.push(r.id);
  }
  // responses_store_max = 3: the two oldest are gone.
  for (const id of ids.slice(0, 2)) await assert.rejects(small.responses.retrieve(id), OpenAI.NotFoundError);
  for (const id of ids.slice(2)) assert.equal((await small.responses.retrieve(id)).id, id);
  await assert.rejects(
    small.responses.create({ model: 'tiny', input: 'x', previous_response_id: ids[0] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'previous_response_id',
  );
  // A used record is the most recent: reading ids[2] keeps it over ids[3].
  await small.responses.retrieve(ids[2]);
  await small.responses.create({ model: 'tiny', input: 'one more', max_output_tokens: 4, temperature: 0 });
  assert.equal((await small.responses.retrieve(ids[2])).id, ids[2]);
  await assert.rejects(small.responses.retrieve(ids[3]), OpenAI.NotFoundError);

  // responses_store_bytes = 16k: large responses evict by size.
  const big = [];
  const long = 'word '.repeat(700);
  for (let i = 0; i < 4; i++) {
    const r = await small.responses.create({ model: 'tiny', input: `${i} ${long}`, max_output_tokens: 8, temperature: 0 });
    big.push(r.id);
  }
  const bytes = await metric(C, 'mllm_responses_stored_bytes');
  const count = await metric(C, 'mllm_responses_stored');
  assert.ok(bytes <= 16384, `stored bytes ${bytes}`);
  assert.ok(count < 3, `stored ${count}`);
  assert.ok((await metric(C, 'mllm_responses_evicted_total')) >= 4);
  await assert.rejects(small.responses.retrieve(big[0]), OpenAI.NotFoundError);
  assert.equal((await small.responses.retrieve(big[3])).id, big[3]);
});

const openai = createOpenAI({ baseURL: `${A}/v1`, apiKey: KEY });

test('Vercel AI SDK default OpenAI provider: generateText over Responses', async () => {
  const r = await generateText({
    model: openai('tiny'),
    system: 'Be brief.',
    prompt: 'Say hello.',
    temperature: 0,
    maxOutputTokens: 12,
    maxRetries: 0,
  });
  assert.ok(r.text.length > 0);
  assert.match(r.response.id, /^resp_/);
  assert.ok(r.usage.inputTokens > 0);
  assert.ok(r.usage.outputTokens > 0);
  const stored = await client.responses.retrieve(r.response.id);
  assert.equal(stored.output_text, r.text);
});

test('Vercel AI SDK default OpenAI provider: a second turn sends the first as item references', async () => {
  // With store on (its default) @ai-sdk/openai sends the earlier output as
  // {type: "item_reference", id}: the stored items stand in for them, so the
  // turn sees the same conversation as one sent in full.
  const opts = { model: openai('tiny'), temperature: 0, maxOutputTokens: 8, maxRetries: 0 };
  const bodies = [];
  const spy = createOpenAI({
    baseURL: `${A}/v1`,
    apiKey: KEY,
    fetch: async (url, init) => {
      bodies.push(JSON.parse(init.body));
      return fetch(url, init);
    },
  });
  const t1 = await generateText({ ...opts, prompt: 'Tell me about the sea.' });
  const history = [{ role: 'user', content: 'Tell me about the sea.' }, ...t1.response.messages];
  const t2 = await generateText({ ...opts, model: spy('tiny'), messages: [...history, { role: 'user', content: 'And the sky?' }] });
  const sent = bodies.at(-1).input;
  assert.equal(sent[1].type, 'item_reference');
  assert.match(sent[1].id, /^msg_/);
  // The same conversation sent in full, without references.
  const full = await client.responses.create({
    model: 'tiny', temperature: 0, max_output_tokens: 8, store: false,
    input: [
      { role: 'user', content: 'Tell me about the sea.' },
      { role: 'assistant', content: t1.text },
      { role: 'user', content: 'And the sky?' },
    ],
  });
  assert.equal(t2.text, full.output_text);
  assert.equal(t2.usage.inputTokens, full.usage.input_tokens);
  const items = await client.responses.inputItems.list(t2.response.id);
  assert.ok(items.data.some((it) => it.id === sent[1].id && it.type === 'message' && it.role === 'assistant'));
  // The SDK's ItemReference makes type optional: {id} alone is a reference.
  const bare = await client.responses.create({
    model: 'tiny', temperature: 0, max_output_tokens: 8, store: false,
    input: [{ role: 'user', content: 'Tell me about the sea.' }, { id: sent[1].id }, { role: 'user', content: 'And the sky?' }],
  });
  assert.equal(bare.output_text, full.output_text);
  // An item of a response that was not stored, or of none: 404 naming it.
  const unstored = await client.responses.create({ model: 'tiny', input: 'Hi', max_output_tokens: 2, store: false });
  for (const id of [unstored.output[0].id, 'msg_0123456789abcdef0123456789abcdef01234567', 'msg_nothex']) {
    await assert.rejects(
      client.responses.create({ model: 'tiny', input: [{ type: 'item_reference', id }, { role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.NotFoundError && e.param === 'input[0].id' && e.message.includes(id),
    );
  }
});

test('Vercel AI SDK default OpenAI provider: streamText over Responses', async () => {
  const r = streamText({
    model: openai('tiny'),
    prompt: 'Say hello.',
    temperature: 0,
    maxOutputTokens: 12,
    maxRetries: 0,
  });
  let text = '';
  for await (const part of r.textStream) text += part;
  assert.ok(text.length > 0);
  assert.equal(text, await r.text);
  const plain = await generateText({ model: openai('tiny'), prompt: 'Say hello.', temperature: 0, maxOutputTokens: 12, maxRetries: 0 });
  assert.equal(text, plain.text);
});
