// clients.test.mjs — structured output through two popular client
// libraries, unmodified: the Vercel AI SDK (ai + @ai-sdk/openai-compatible,
// generateObject and generateText with Output.object) and LangChain JS
// (@langchain/openai ChatOpenAI.withStructuredOutput with its three
// methods). Each must hand back an object; zod checks it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { generateObject, generateText, Output } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';

const A = process.env.MLLMD_URL_A;
const KEY = process.env.MLLMD_KEY;
assert.ok(A && KEY, 'run through tests/sdk/run.sh');

const Person = z.object({
  name: z.string().max(12),
  age: z.number().int(),
  city: z.enum(['Oslo', 'Lima', 'Pune']),
});

const provider = createOpenAICompatible({
  name: 'mobilellmd',
  baseURL: `${A}/v1`,
  apiKey: KEY,
  supportsStructuredOutputs: true,
});

test('Vercel AI SDK generateObject returns a schema-valid object', async () => {
  const { object, finishReason } = await generateObject({
    model: provider('tiny'),
    schema: Person,
    prompt: 'Describe a person.',
    temperature: 1,
    seed: 11,
    maxOutputTokens: 200,
    maxRetries: 0,
  });
  assert.equal(finishReason, 'stop');
  assert.deepEqual(Person.parse(object), object);
});

test('Vercel AI SDK generateText with Output.object returns a schema-valid object', async () => {
  const r = await generateText({
    model: provider('tiny'),
    output: Output.object({ schema: Person }),
    prompt: 'Describe a person.',
    temperature: 1,
    seed: 12,
    maxOutputTokens: 200,
    maxRetries: 0,
  });
  const out = r.output ?? r.experimental_output;
  assert.deepEqual(Person.parse(out), out);
});

for (const method of ['jsonSchema', 'functionCalling', 'jsonMode']) {
  test(`LangChain withStructuredOutput (${method}) returns an object`, async () => {
    // jsonMode leaves string lengths free: the randomly initialised tiny
    // fixture never closes a free string, the trained stories model does.
    const llm = new ChatOpenAI({
      model: method === 'jsonMode' ? 'st' : 'tiny',
      apiKey: KEY,
      configuration: { baseURL: `${A}/v1` },
      temperature: 1,
      maxTokens: 200,
      maxRetries: 0,
      modelKwargs: { seed: 13 },
    });
    // jsonMode only promises a JSON object (the schema is up to the
    // prompt), so it is asked for one with no required fields.
    const schema = method === 'jsonMode' ? z.object({}).passthrough() : Person;
    const s = llm.withStructuredOutput(schema, { method, name: 'person' });
    const out = await s.invoke('Describe a person.');
    assert.equal(typeof out, 'object');
    assert.ok(out !== null);
    if (method !== 'jsonMode') assert.deepEqual(Person.parse(out), out);
  });
}

test('LangChain reads a reasoning split answer (streamed and not) without error', async () => {
  // The "think" model's template opens <think>: with a budget of 6 every
  // token is reasoning, so the answer (content) is empty and the reasoning
  // arrives in reasoning_content / reasoning, fields LangChain must pass by.
  const llm = new ChatOpenAI({
    model: 'think',
    apiKey: KEY,
    configuration: { baseURL: `${A}/v1` },
    temperature: 0,
    maxTokens: 6,
    maxRetries: 0,
  });
  const msg = await llm.invoke('Hi');
  assert.equal(msg.content, '');
  assert.equal(msg.response_metadata?.finish_reason, 'length');
  let text = '';
  let chunks = 0;
  for await (const c of await llm.stream('Hi')) {
    chunks++;
    text += typeof c.content === 'string' ? c.content : '';
  }
  assert.ok(chunks > 0);
  assert.equal(text, '');
});
