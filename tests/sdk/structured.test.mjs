// structured.test.mjs — structured outputs and tool calls through the
// official OpenAI Node SDK, checked by an independent JSON Schema validator
// (ajv): seeded samples at temperature 1 must parse and validate, streamed
// and not; unsupported keywords are a 400 naming them; concurrent greedy
// constrained requests equal their solo outputs; zod helpers and forced
// tool calls round-trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { zodResponseFormat, zodFunction } from 'openai/helpers/zod';
import { z } from 'zod';
import Ajv2020 from 'ajv/dist/2020.js';

const A = process.env.MLLMD_URL_A;
const KEY = process.env.MLLMD_KEY;
assert.ok(A && KEY, 'run through tests/sdk/run.sh');
const client = new OpenAI({ baseURL: `${A}/v1`, apiKey: KEY, maxRetries: 0 });
// Draft 2020-12 (prefixItems, $defs), as OpenAI's structured outputs use.
// Formats are not validated (no ajv-formats): the tests that use them also
// check them by pattern.
const ajv = new Ajv2020({ strict: false, validateFormats: false });
// zod's converter stamps draft-07 on its schemas; the keywords it emits
// mean the same in 2020-12.
const compile = (schema) => {
  const { $schema, ...rest } = schema;
  return ajv.compile(rest);
};
const SAMPLES = 100;
const MAX_TOKENS = 320;

const str = (n) => ({ type: 'string', maxLength: n });
const SCHEMAS = {
  nested: {
    type: 'object',
    properties: {
      name: str(10),
      address: {
        type: 'object',
        properties: { city: str(8), zip: { type: 'string', pattern: '^[0-9]{5}$' } },
        required: ['city', 'zip'],
        additionalProperties: false,
      },
      age: { type: 'integer', minimum: 0, maximum: 120 },
    },
    required: ['name', 'address', 'age'],
    additionalProperties: false,
  },
  arrays: {
    type: 'object',
    properties: {
      scores: { type: 'array', items: { type: 'number' }, minItems: 1, maxItems: 4 },
      pair: { type: 'array', prefixItems: [{ type: 'boolean' }, { type: 'null' }], items: false },
    },
    required: ['scores', 'pair'],
    additionalProperties: false,
  },
  enums: {
    type: 'object',
    properties: {
      color: { enum: ['red', 'green', 'blue'] },
      size: { enum: [1, 2, 3, null] },
      kind: { const: 'fixed' },
    },
    required: ['color', 'size', 'kind'],
    additionalProperties: false,
  },
  anyof: {
    type: 'object',
    properties: {
      value: { anyOf: [{ type: 'integer' }, str(6), { type: 'array', items: { type: 'boolean' }, maxItems: 3 }] },
      maybe: { type: ['string', 'null'], maxLength: 5 },
    },
    required: ['value', 'maybe'],
    additionalProperties: false,
  },
  recursive: {
    $defs: {
      node: {
        type: 'object',
        properties: {
          id: { type: 'integer', minimum: 0, maximum: 9 },
          next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] },
        },
        required: ['id', 'next'],
        additionalProperties: false,
      },
    },
    $ref: '#/$defs/node',
  },
  patterns: {
    type: 'object',
    properties: {
      code: { type: 'string', pattern: '^[A-Z]{2}-[0-9]{2,3}$' },
      day: { type: 'string', format: 'date' },
      id: { type: 'string', format: 'uuid' },
    },
    required: ['code', 'day', 'id'],
    additionalProperties: false,
  },
};

function rf(name, schema) {
  return { type: 'json_schema', json_schema: { name, schema, strict: true } };
}

async function streamedText(params) {
  const s = await client.completions.create({ ...params, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of s) {
    for (const c of chunk.choices ?? []) {
      text += c.text ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish };
}

// Runs fn over items with at most `width` in flight.
async function pool(items, width, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: width }, worker));
  return out;
}

// Every schema on st (512-token vocabulary); two on tiny, whose 32000-token
// LLaMA vocabulary has multi-byte and multi-character tokens.
const RUNS = [
  ...Object.keys(SCHEMAS).map((name) => ['st', name]),
  ['tiny', 'nested'],
  ['tiny', 'patterns'],
];
for (const [model, name] of RUNS) {
  const schema = SCHEMAS[name];
  test(`${SAMPLES} seeded samples at temperature 1 validate: ${name} (${model})`, async () => {
    const validate = compile(schema);
    const seeds = Array.from({ length: SAMPLES }, (_, i) => 1000 + i);
    const results = await pool(seeds, 16, async (seed) => {
      const params = {
        model, prompt: 'Once upon a time', max_tokens: MAX_TOKENS,
        temperature: 1, seed, response_format: rf(name, schema),
      };
      const stream = seed % 2 === 1;
      if (stream) return { seed, stream, ...(await streamedText(params)) };
      const r = await client.completions.create(params);
      return { seed, stream, text: r.choices[0].text, finish: r.choices[0].finish_reason };
    });
    let streamed = 0;
    for (const r of results) {
      assert.equal(r.finish, 'stop', `seed ${r.seed}: finish ${r.finish}: ${JSON.stringify(r.text)}`);
      let v;
      assert.doesNotThrow(() => { v = JSON.parse(r.text); }, `seed ${r.seed}: ${r.text}`);
      assert.ok(validate(v), `seed ${r.seed}: ${r.text}: ${ajv.errorsText(validate.errors)}`);
      streamed += r.stream;
    }
    assert.equal(streamed, SAMPLES / 2);
  });
}

test('unsupported keywords: 400 naming the keyword and its pointer', async () => {
  const cases = [
    [{ type: 'array', uniqueItems: true }, '#/uniqueItems'],
    [{ type: 'object', properties: { n: { type: 'number', multipleOf: 3 } } }, '#/properties/n/multipleOf'],
    [{ type: 'string', pattern: '(?<=a)b' }, '#/pattern'],
  ];
  for (const [schema, pointer] of cases) {
    await assert.rejects(
      client.chat.completions.create({
        model: 'st', messages: [{ role: 'user', content: 'hi' }], response_format: rf('x', schema),
      }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, String(err));
        assert.equal(err.status, 400);
        assert.equal(err.param, 'response_format');
        assert.ok(err.message.includes(pointer), err.message);
        return true;
      },
    );
  }
});

for (const model of ['st', 'tiny']) test(`16 concurrent constrained greedy requests equal their solo outputs (${model})`, async () => {
  const names = Object.keys(SCHEMAS);
  const reqs = Array.from({ length: 16 }, (_, i) => ({
    model,
    prompt: ['Once upon a time', 'The cat', 'Lily and Tom', 'One day'][i % 4],
    max_tokens: 120,
    temperature: 0,
    response_format: rf(names[i % names.length], SCHEMAS[names[i % names.length]]),
  }));
  const solo = [];
  for (const r of reqs) solo.push((await client.completions.create(r)).choices[0].text);
  const together = await Promise.all(reqs.map((r) => client.completions.create(r)));
  together.forEach((t, i) => assert.equal(t.choices[0].text, solo[i], `request ${i}`));
  assert.ok(new Set(solo).size > 1, 'the schemas should give different outputs');
});

test('chat.completions.parse with zodResponseFormat returns a parsed object', async () => {
  const Person = z.object({
    name: z.string().max(12),
    age: z.number().int(),
    tags: z.array(z.enum(['a', 'b'])).max(3),
    nick: z.string().max(8).nullable(),
  });
  const r = await client.chat.completions.parse({
    model: 'st',
    messages: [{ role: 'user', content: 'Describe a person.' }],
    response_format: zodResponseFormat(Person, 'person'),
    max_tokens: 200,
    temperature: 1,
    seed: 7,
  });
  const msg = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(msg.parsed, `no parsed object: ${msg.content}`);
  assert.deepEqual(Person.parse(msg.parsed), msg.parsed);
});

test('zod number bounds and OpenAPI nullable parse', async () => {
  const Reading = z.object({
    score: z.number().min(0).max(1),
    delta: z.number().gt(-2).lte(3),
    day: z.iso.date(),
  });
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.parse({
      model: 'st',
      messages: [{ role: 'user', content: 'A reading, please.' }],
      response_format: zodResponseFormat(Reading, 'reading'),
      max_tokens: 200,
      temperature: 1,
      seed,
    });
    const msg = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'stop', msg.content);
    assert.deepEqual(Reading.parse(msg.parsed), msg.parsed);
  }
  // zod 3 (through the SDK's helper) writes .nullable() as OpenAPI's
  // "nullable": true, which must compile (test_schema checks both branches).
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({
      model: 'st',
      messages: [{ role: 'user', content: 'Maybe a word.' }],
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'n',
          strict: true,
          schema: {
            type: 'object',
            properties: { a: { type: 'string', maxLength: 6, nullable: true } },
            required: ['a'],
            additionalProperties: false,
          },
        },
      },
      max_tokens: 60,
      temperature: 1.5,
      seed,
    });
    const v = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(v), ['a']);
    assert.ok(v.a === null || (typeof v.a === 'string' && [...v.a].length <= 6), JSON.stringify(v));
  }
});

test('tool_choice required returns a tool call whose arguments validate', async () => {
  const weather = {
    type: 'object',
    properties: { city: str(12), unit: { enum: ['c', 'f'] } },
    required: ['city', 'unit'],
    additionalProperties: false,
  };
  const tools = [
    { type: 'function', function: { name: 'get_weather', description: 'Weather now', parameters: weather } },
    zodFunction({ name: 'add', parameters: z.object({ a: z.number().int(), b: z.number().int() }) }),
  ];
  const validators = {
    get_weather: compile(weather),
    add: compile(tools[1].function.parameters),
  };
  for (const seed of [1, 2, 3, 4]) {
    const r = await client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'What is the weather?' }],
      tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 200, temperature: 1, seed,
    });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls');
    assert.equal(c.message.content, null);
    assert.equal(c.message.tool_calls.length, 1);
    const call = c.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.ok(call.id.startsWith('call_'));
    assert.ok(validators[call.function.name], call.function.name);
    const args = JSON.parse(call.function.arguments);
    assert.ok(validators[call.function.name](args), ajv.errorsText(validators[call.function.name].errors));

    // The same call streamed: id/name first, then argument fragments.
    const s = await client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'What is the weather?' }],
      tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 200, temperature: 1, seed, stream: true,
    });
    let name = null;
    let id = null;
    let argText = '';
    let finish = null;
    for await (const chunk of s) {
      for (const ch of chunk.choices) {
        for (const tc of ch.delta?.tool_calls ?? []) {
          if (tc.id) id = tc.id;
          if (tc.function?.name) name = tc.function.name;
          argText += tc.function?.arguments ?? '';
        }
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.ok(id);
    assert.equal(name, call.function.name);
    assert.deepEqual(JSON.parse(argText), args);
  }
  // parallel_tool_calls (the default): one or more calls, each with its
  // own id; every complete one validates.
  for (const seed of [1, 2, 3, 4]) {
    const r = await client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'What is the weather?' }],
      tools, tool_choice: 'required', max_tokens: 200, temperature: 1, seed,
    });
    const c = r.choices[0];
    if (c.finish_reason === 'length' && !c.message.tool_calls) continue; // cut mid-call
    assert.ok(c.message.tool_calls.length >= 1);
    assert.equal(new Set(c.message.tool_calls.map((t) => t.id)).size, c.message.tool_calls.length);
    for (const call of c.message.tool_calls) {
      const v = validators[call.function.name];
      assert.ok(v && v(JSON.parse(call.function.arguments)), call.function.arguments);
    }
  }
});

test('a named tool_choice forces that tool; messages with tool results are accepted', async () => {
  const r = await client.chat.completions.create({
    model: 'tiny',
    messages: [
      { role: 'user', content: 'Add two numbers.' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'add', arguments: '{"a":1,"b":2}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '3' },
      { role: 'user', content: 'Again.' },
    ],
    tools: [
      zodFunction({ name: 'add', parameters: z.object({ a: z.number().int(), b: z.number().int() }) }),
      zodFunction({ name: 'noop', parameters: z.object({}) }),
    ],
    tool_choice: { type: 'function', function: { name: 'add' } },
    max_tokens: 120,
    temperature: 0,
  });
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, 'add');
  const args = JSON.parse(call.function.arguments);
  assert.ok(Number.isInteger(args.a) && Number.isInteger(args.b));
  const m = await client.models.retrieve('st');
  assert.equal(m.capabilities.tool_calls.auto, 'plain_text');
});

test('max_tokens mid-JSON ends with length, never a faked closing brace', async () => {
  const r = await client.completions.create({
    model: 'st', prompt: 'Once', max_tokens: 5, temperature: 0, response_format: rf('nested', SCHEMAS.nested),
  });
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.throws(() => JSON.parse(r.choices[0].text));
});

test('a recursive schema pushed past the nesting limit ends with length, not an error', async () => {
  // logit_bias pushes tiny towards '{' and '"c"', so it nests {"c":{"c":...
  // until the matcher's depth limit leaves no way on.
  const schema = {
    type: 'object', properties: { c: { anyOf: [{ $ref: '#' }, { type: 'null' }] } },
    required: ['c'], additionalProperties: false,
  };
  const r = await client.completions.create({
    model: 'tiny', prompt: 'A', max_tokens: 1500, temperature: 0,
    logit_bias: { 426: 100, 29912: 100 }, response_format: rf('deep', schema),
  });
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.ok(r.usage.completion_tokens < 1500, 'stopped by the depth limit, not max_tokens');
  assert.ok(r.choices[0].text.split('"c"').length > 100);
});

test('a value completed exactly at max_tokens ends with stop, not length', async () => {
  const schema = { type: 'object', properties: { a: { type: 'boolean' } }, required: ['a'], additionalProperties: false };
  const body = { model: 'st', prompt: 'A', temperature: 0, response_format: rf('flag', schema) };
  const full = await client.completions.create({ ...body, max_tokens: 64 });
  assert.equal(full.choices[0].finish_reason, 'stop');
  const n = full.usage.completion_tokens - 1; // without the EOS that ended it
  const exact = await client.completions.create({ ...body, max_tokens: n });
  assert.equal(exact.choices[0].finish_reason, 'stop');
  assert.equal(exact.choices[0].text, full.choices[0].text);
  assert.deepEqual(JSON.parse(exact.choices[0].text), JSON.parse(full.choices[0].text));
  const cut = await client.completions.create({ ...body, max_tokens: n - 1 });
  assert.equal(cut.choices[0].finish_reason, 'length');
});
