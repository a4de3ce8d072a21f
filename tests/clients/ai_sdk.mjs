// The Vercel AI SDK (`ai` 6) through Routerly, as test_clients.py drives it.
//
//   node ai_sdk.mjs SCENARIO MODEL FILE
//
// Environment: ROUTERLY_URL (http://127.0.0.1:P), ROUTERLY_TOKEN (a project token).
// SCENARIO is one of:
//   generate-responses  generateText with a tool on @ai-sdk/openai's default provider (Responses API)
//   stream-chat         streamText with a tool on @ai-sdk/openai's chat provider (Chat Completions)
//   stream-anthropic    streamText with a tool on @ai-sdk/anthropic (Messages API)
//   two-turn            two chat turns on the default Responses provider, the second carrying
//                       the first answer back as the SDK does (an item_reference with store on)
//   media-responses     generateText with an image and a PDF on the default Responses provider
//   media-chat          the same on @ai-sdk/openai's chat provider
//   media-anthropic     the same on @ai-sdk/anthropic
//                       (the image and the PDF are MEDIA_PNG and MEDIA_PDF, base64, from the environment)
// The tool `read_file` returns FILE's contents. Prints one JSON line:
// {"texts": [...], "toolResults": [...], "steps": N}.
import { readFileSync } from "node:fs";
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";

const [scenario, model, file] = process.argv.slice(2);
const base = process.env.ROUTERLY_URL;
const apiKey = process.env.ROUTERLY_TOKEN;
if (!scenario || !model || !file || !base || !apiKey) {
  console.error("usage: ROUTERLY_URL=… ROUTERLY_TOKEN=… node ai_sdk.mjs SCENARIO MODEL FILE");
  process.exit(2);
}

const openai = createOpenAI({ baseURL: `${base}/v1`, apiKey });
const anthropic = createAnthropic({ baseURL: `${base}/v1`, apiKey });
const tools = {
  read_file: tool({
    description: "Reads a file of the project and returns its text.",
    inputSchema: jsonSchema({
      type: "object",
      properties: { path: { type: "string", description: "The file's path." } },
      required: ["path"],
      additionalProperties: false,
    }),
    // The path the model asked for is what the test checks reached the provider; the file
    // read is always FILE, so a wrong path cannot read anything else.
    execute: async ({ path }) => `${path}: ${readFileSync(file, "utf8").trim()}`,
  }),
};
const prompt = `Read the file notes.txt and quote it. [mock:tool=read_file] [mock:arg.path=notes.txt]`;
const toolRound = { tools, stopWhen: stepCountIs(3), maxRetries: 0 };

async function streamed(languageModel) {
  const result = streamText({ model: languageModel, prompt, ...toolRound });
  let text = "";
  for await (const delta of result.textStream) text += delta;
  const steps = await result.steps;
  return { texts: [text], toolResults: steps.flatMap((s) => s.toolResults.map((r) => r.output)), steps: steps.length };
}

let output;
switch (scenario) {
  case "generate-responses": {
    const result = await generateText({ model: openai(model), prompt, ...toolRound });
    output = {
      texts: [result.text],
      toolResults: result.steps.flatMap((s) => s.toolResults.map((r) => r.output)),
      steps: result.steps.length,
    };
    break;
  }
  case "stream-chat":
    output = await streamed(openai.chat(model));
    break;
  case "stream-anthropic":
    output = await streamed(anthropic(model));
    break;
  case "media-responses":
  case "media-chat":
  case "media-anthropic": {
    const provider = { "media-responses": openai, "media-chat": openai.chat, "media-anthropic": anthropic }[scenario];
    const messages = [
      {
        role: "user",
        content: [
          { type: "text", text: "Describe the picture and summarise the document." },
          { type: "image", image: process.env.MEDIA_PNG, mediaType: "image/png" },
          { type: "file", data: process.env.MEDIA_PDF, mediaType: "application/pdf", filename: "report.pdf" },
        ],
      },
    ];
    const result = await generateText({ model: provider(model), messages, maxRetries: 0 });
    output = { texts: [result.text], toolResults: [], steps: result.steps.length };
    break;
  }
  case "two-turn": {
    const messages = [{ role: "user", content: "My name is Ada." }];
    const first = await generateText({ model: openai(model), messages, maxRetries: 0 });
    messages.push(...first.response.messages);
    messages.push({ role: "user", content: "What is my name?" });
    const second = await generateText({ model: openai(model), messages, maxRetries: 0 });
    output = { texts: [first.text, second.text], toolResults: [], steps: 2 };
    break;
  }
  default:
    console.error(`unknown scenario ${scenario}`);
    process.exit(2);
}
console.log(JSON.stringify(output));
