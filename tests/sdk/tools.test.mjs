// tools.test.mjs — tool_choice "auto" and parallel tool calls through the
// official OpenAI Node SDK and LangChain, on the "hermes" model: the R1
// fixture served with the real Qwen3 chat template, whose tool-call syntax
// is <tool_call>{"name", "arguments"}</tool_call>. The random fixture never
// writes the opener on its own, so the calls are reached the way a client
// prefills: continue_final_message with an assistant turn that ends with
// "<tool_call>". From there the grammar must give calls of known tools
// whose arguments validate (ajv, not the daemon's code), parsed into
// tool_calls with no markup left in content, streamed and not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Ajv2020 from 'ajv/dist/2020.js';
import { ChatOpenAI } from '@langchain/openai';
import { AIMessage, HumanMessage } from '@langchain/core/messages';

const A = process.env.MLLMD_URL_A;
const KEY = process.env.MLLMD_KEY;
assert.ok(A && KEY, 'run through tests/sdk/run.sh');
const client = new OpenAI({ baseURL: `${A}/v1`, apiKey: KEY, maxRetries: 0 });
const ajv = new Ajv2020({ strict: false });

const weather = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['c', 'f'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const add = {
  type: 'object',
  properties: { a: { type: 'integer' }, b: { type: 'integer' } },
  required: ['a', 'b'],
  additionalProperties: false,
};
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather now', parameters: weather } },
  { type: 'function', function: { name: 'add', description: 'Adds', parameters: add } },
];
const validators = { get_weather: ajv.compile(weather), add: ajv.compile(add) };
const prefill = (text) => [
  { role: 'user', content: 'What is the weather in Oslo?' },
  { role: 'assistant', content: text },
];

function checkCall(call) {
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_/);
  const v = validators[call.function.name];
  assert.ok(v, `unknown tool ${call.function.name}`);
  const args = JSON.parse(call.function.arguments);
  assert.ok(v(args), `${call.function.arguments}: ${ajv.errorsText(v.errors)}`);
  return args;
}

// Streams a request and puts the deltas back together per call index.
async function streamed(body) {
  const s = await client.chat.completions.create({ ...body, stream: true });
  const calls = [];
  let content = '';
  let finish = null;
  for await (const chunk of s) {
    for (const ch of chunk.choices) {
      if (typeof ch.delta?.content === 'string') content += ch.delta.content;
      for (const tc of ch.delta?.tool_calls ?? []) {
        if (tc.id) {
          // The head comes first, once per call, in index order.
          assert.equal(tc.index, calls.length);
          calls.push({ id: tc.id, type: tc.type, function: { name: tc.function.name, arguments: '' } });
        }
        assert.ok(calls[tc.index], `fragment for call ${tc.index} before its head`);
        calls[tc.index].function.arguments += tc.function?.arguments ?? '';
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  return { calls, content, finish };
}

test('capabilities say which tool-call syntax auto parses', async () => {
  assert.equal((await client.models.retrieve('hermes')).capabilities.tool_calls.auto, 'hermes');
  assert.equal((await client.models.retrieve('tiny')).capabilities.tool_calls.auto, 'plain_text');
});

test('auto: from the opener on, one valid call (parallel_tool_calls false), streamed and not', async () => {
  for (let seed = 1; seed <= 12; seed++) {
    const body = {
      model: 'hermes', messages: prefill('Let me check.\n<tool_call>\n'), continue_final_message: true,
      tools, parallel_tool_calls: false, max_tokens: 160, temperature: 1, seed,
    };
    const r = await client.chat.completions.create(body);
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c.message));
    assert.equal(c.message.content, null);
    assert.equal(c.message.tool_calls.length, 1);
    const args = checkCall(c.message.tool_calls[0]);

    const s = await streamed(body);
    assert.equal(s.finish, 'tool_calls');
    assert.equal(s.content.trim(), '');
    assert.equal(s.calls.length, 1);
    assert.equal(s.calls[0].function.name, c.message.tool_calls[0].function.name);
    assert.deepEqual(checkCall(s.calls[0]), args);
  }
});

test('auto: parallel calls each get their own index and id, and all validate', async () => {
  let most = 0;
  for (let seed = 1; seed <= 6; seed++) {
    const body = {
      model: 'hermes', messages: prefill('<tool_call>'), continue_final_message: true,
      tools, max_tokens: 200, temperature: 1, seed,
    };
    const s = await streamed(body);
    assert.ok(s.calls.length >= 1);
    assert.ok(!s.content.includes('<tool_call>') && !s.content.includes('"name"'), s.content);
    assert.equal(new Set(s.calls.map((c) => c.id)).size, s.calls.length);
    // A call cut by max_tokens may be incomplete; every other validates.
    const complete = s.finish === 'tool_calls' ? s.calls : s.calls.slice(0, -1);
    complete.forEach(checkCall);
    most = Math.max(most, s.calls.length);

    const r = await client.chat.completions.create(body);
    const c = r.choices[0];
    if (c.message.tool_calls) {
      // Non-streamed: only complete calls replace the text.
      c.message.tool_calls.forEach(checkCall);
      assert.equal(new Set(c.message.tool_calls.map((t) => t.id)).size, c.message.tool_calls.length);
      assert.ok(c.message.tool_calls.length <= s.calls.length);
    } else {
      assert.equal(c.finish_reason, 'length');
    }
  }
  assert.ok(most >= 2, 'no seed gave two calls');
});

test('auto without an opener stays text: the opener never appears outside a call', async () => {
  for (let seed = 1; seed <= 4; seed++) {
    const r = await client.chat.completions.create({
      model: 'hermes', messages: [{ role: 'user', content: 'Hello' }], tools,
      max_tokens: 60, temperature: 1, seed,
      // Pushes the model towards the opener's tokens (<, tool, _call, >).
      logit_bias: { 27: 8, 14506: 8, 13735: 8, 29: 8 },
    });
    const c = r.choices[0];
    if (c.message.tool_calls) c.message.tool_calls.forEach(checkCall);
    else assert.ok(!(c.message.content ?? '').includes('<tool_call>'), c.message.content);
  }
});

test('openai SDK tool loop: call, tool result, next turn', async () => {
  const first = await client.chat.completions.create({
    model: 'hermes', messages: prefill('<tool_call>\n'), continue_final_message: true,
    tools, parallel_tool_calls: false, max_tokens: 160, temperature: 1, seed: 5,
  });
  const msg = first.choices[0].message;
  assert.equal(first.choices[0].finish_reason, 'tool_calls');
  const call = msg.tool_calls[0];
  checkCall(call);
  const second = await client.chat.completions.create({
    model: 'hermes',
    messages: [
      { role: 'user', content: 'What is the weather in Oslo?' },
      // The message goes back as the SDK returned it (content null, as
      // OpenAI's docs push it): Qwen3's template does string operations
      // on content, which the daemon hands it as "".
      msg,
      // The tool's result as text parts (the SDK's other content form).
      { role: 'tool', tool_call_id: call.id, content: [{ type: 'text', text: '{"temp": 4}' }] },
    ],
    tools, max_tokens: 40, temperature: 0,
  });
  const c = second.choices[0];
  assert.ok(['stop', 'length', 'tool_calls'].includes(c.finish_reason));
  // The call and its result are in the prompt the template rendered.
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens);
  if (c.message.tool_calls) c.message.tool_calls.forEach(checkCall);
  else assert.equal(typeof c.message.content, 'string');
});

test('LangChain bindTools with tool_choice auto hands back parsed tool calls', async () => {
  const llm = new ChatOpenAI({
    model: 'hermes',
    apiKey: KEY,
    configuration: { baseURL: `${A}/v1` },
    temperature: 1,
    maxTokens: 160,
    maxRetries: 0,
    modelKwargs: { seed: 3, continue_final_message: true, parallel_tool_calls: false },
  });
  const bound = llm.bindTools(tools, { tool_choice: 'auto' });
  const out = await bound.invoke([
    new HumanMessage('What is the weather in Oslo?'),
    new AIMessage('<tool_call>\n'),
  ]);
  assert.equal(out.tool_calls.length, 1);
  const tc = out.tool_calls[0];
  assert.ok(validators[tc.name], tc.name);
  assert.ok(validators[tc.name](tc.args), ajv.errorsText(validators[tc.name].errors));
});

test('assistant content null or absent, and text parts, render through a Jinja template', async () => {
  const tc = [{ id: 'c1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }];
  const base = [
    { role: 'system', content: [{ type: 'text', text: 'Be brief.' }] },
    { role: 'user', content: [{ type: 'text', text: 'What is' }, { type: 'text', text: 'the weather?' }] },
  ];
  const tok = async (messages) => {
    const r = await fetch(`${A}/tokenize`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: 'hermes', messages }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    const ids = (await r.json()).tokens;
    const d = await fetch(`${A}/detokenize`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: 'hermes', tokens: ids }),
    });
    return (await d.json()).prompt;
  };
  // Parts are joined with "\n" before the template sees them: the prompt
  // is the one the same text as strings gives.
  const joined = await tok([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What is\nthe weather?' },
  ]);
  assert.equal(await tok(base), joined);
  assert.ok(!joined.includes("'type'"), joined);
  const withNull = await tok([...base, { role: 'assistant', content: null, tool_calls: tc },
    { role: 'tool', tool_call_id: 'c1', content: '{"t":4}' }]);
  const absent = await tok([...base, { role: 'assistant', tool_calls: tc },
    { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: '{"t":4}' }] }]);
  const empty = await tok([...base, { role: 'assistant', content: '', tool_calls: tc },
    { role: 'tool', tool_call_id: 'c1', content: '{"t":4}' }]);
  assert.equal(withNull, empty);
  assert.equal(absent, empty);
  assert.ok(empty.includes('"city"') && empty.includes('{"t":4}'), empty);
});

test('a template that opens <think>: forced calls and JSON come out as calls and content', async () => {
  const r = await client.chat.completions.create({
    model: 'think', messages: [{ role: 'user', content: 'Weather in Oslo?' }],
    tools, tool_choice: 'required', parallel_tool_calls: false,
    max_tokens: 200, temperature: 1, seed: 1,
  });
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
  assert.equal(c.message.tool_calls.length, 1);
  checkCall(c.message.tool_calls[0]);
  assert.equal(c.message.reasoning_content, undefined);
  // Streamed, the role delta says content null (as the message does), and
  // the call comes back the same.
  const body = {
    model: 'think', messages: [{ role: 'user', content: 'Weather in Oslo?' }],
    tools, tool_choice: 'required', parallel_tool_calls: false,
    max_tokens: 200, temperature: 1, seed: 1, stream: true,
  };
  let first = null;
  for await (const chunk of await client.chat.completions.create(body)) {
    if (!first && chunk.choices.length) first = chunk.choices[0].delta;
  }
  assert.equal(first.role, 'assistant');
  assert.equal(first.content, null);
  const s = await streamed({ ...body, stream: undefined });
  assert.equal(s.finish, 'tool_calls');
  assert.equal(s.content, '');
  assert.deepEqual(checkCall(s.calls[0]), JSON.parse(c.message.tool_calls[0].function.arguments));
  const j = await client.chat.completions.create({
    model: 'think', messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_object' }, max_tokens: 200, seed: 3,
  });
  assert.equal(j.choices[0].finish_reason, 'stop', JSON.stringify(j.choices[0]));
  assert.equal(typeof JSON.parse(j.choices[0].message.content), 'object');
  assert.equal(j.choices[0].message.refusal, null);
});
