"""The OpenAI Agents SDK (PyPI `openai-agents`) through Routerly, as test_clients.py drives it.

    python agents_sdk.py SCENARIO MODEL FILE

Environment: ROUTERLY_URL (http://127.0.0.1:P), ROUTERLY_TOKEN (a project token). SCENARIO is
`run` (Runner.run) or `streamed` (Runner.run_streamed), both on the SDK's default Responses
model with a function tool `read_file` that returns FILE's contents. Tracing is off (its exporter
would call api.openai.com). Prints one JSON line: {"texts": [...], "toolResults": [...]}.
"""

import asyncio
import json
import os
import sys

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI


async def main(scenario: str, model: str, file: str) -> None:
    set_tracing_disabled(True)
    client = AsyncOpenAI(
        base_url=f"{os.environ['ROUTERLY_URL']}/v1", api_key=os.environ["ROUTERLY_TOKEN"], max_retries=0
    )
    tool_results: list[str] = []

    @function_tool
    def read_file(path: str) -> str:
        """Reads a file of the project and returns its text.

        Args:
            path: The file's path.
        """
        with open(file, encoding="utf-8") as handle:
            result = f"{path}: {handle.read().strip()}"
        tool_results.append(result)
        return result

    agent = Agent(
        name="Reader",
        instructions="You read files for the user.",
        model=OpenAIResponsesModel(model=model, openai_client=client),
        tools=[read_file],
    )
    prompt = "Read the file notes.txt and quote it. [mock:tool=read_file] [mock:arg.path=notes.txt]"
    if scenario == "run":
        result = await Runner.run(agent, prompt, max_turns=3)
        text = result.final_output
    elif scenario == "streamed":
        result = Runner.run_streamed(agent, prompt, max_turns=3)
        text = ""
        async for event in result.stream_events():
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                text += event.data.delta
        assert text == result.final_output, (text, result.final_output)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps({"texts": [text], "toolResults": tool_results}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
