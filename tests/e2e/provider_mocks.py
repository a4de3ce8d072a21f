"""`routerly-mock` with every provider it imitates, for the provider tests.

conftest's `MockProviders` knows the OpenAI and Anthropic mocks only; this helper reads the whole
JSON line the binary prints (keys `openai`, `anthropic`, `gemini`, `mistral`, `ollama`, `azure`).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import httpx

from conftest import MOCK_API_KEY, find_binary, read_json_line, stop_process

#: The providers `routerly-mock` starts, by the key of its JSON line.
PROVIDERS = ("openai", "anthropic", "gemini", "mistral", "ollama", "azure")


@dataclass
class AllMocks:
    """A running `routerly-mock`: each provider's base URL as its official SDK takes it."""

    urls: dict[str, str]
    api_key: str

    def url(self, provider: str) -> str:
        return self.urls[provider]

    def _root(self, provider: str) -> str:
        return self.urls[provider].removesuffix("/v1")

    def requests(self, provider: str) -> list[dict]:
        """Recorded requests of `provider`, oldest first."""
        response = httpx.get(f"{self._root(provider)}/_mock/requests", timeout=5)
        response.raise_for_status()
        return response.json()

    def fail_next(self, provider: str, count: int, status: int) -> None:
        """The next `count` chat requests to `provider` answer `status`."""
        httpx.post(
            f"{self._root(provider)}/_mock/fail", json={"count": count, "status": status}, timeout=5
        ).raise_for_status()

    def reset(self) -> None:
        for provider in PROVIDERS:
            httpx.post(f"{self._root(provider)}/_mock/reset", timeout=5).raise_for_status()


def start_all_mocks(api_key: str = MOCK_API_KEY) -> tuple[subprocess.Popen, AllMocks]:
    """Starts `routerly-mock` on free loopback ports; stop it with `stop_process`."""
    binary = find_binary("ROUTERLY_MOCK_BIN", "target/debug/routerly-mock")
    process = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--api-key", api_key], stdout=subprocess.PIPE, text=True
    )
    try:
        urls = read_json_line(process)
    except BaseException:
        stop_process(process)
        raise
    missing = [provider for provider in PROVIDERS if provider not in urls]
    if missing:
        stop_process(process)
        raise RuntimeError(f"routerly-mock printed no URL for {missing}")
    return process, AllMocks(urls, api_key)


def tokens(byte_count: int) -> int:
    """The mock's token rule: a quarter of the counted bytes, rounded up."""
    return -(-byte_count // 4)
