"""Shared fixtures for Routerly's end-to-end tests.

Nothing here builds anything: binaries are found through environment variables that default
to the debug build (`cargo build` first). Every process a fixture starts is stopped when the
fixture ends. No test reaches the internet; upstream providers are `routerly-mock` on loopback.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: The credential the mock providers require (what Routerly stores as the provider API key).
MOCK_API_KEY = "sk-mock-upstream-key"


def find_binary(env_var: str, default: str) -> Path:
    """The binary named by `env_var`, else `default`; relative paths are from the repo root."""
    path = Path(os.environ.get(env_var, default))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        pytest.fail(f"{path} does not exist: run `cargo build` first or set {env_var}")
    return path


def read_json_line(process: subprocess.Popen, timeout: float = 10.0) -> dict:
    """The first stdout line of `process`, parsed as JSON, waiting at most `timeout` seconds."""
    assert process.stdout is not None, "the process needs stdout=PIPE"
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise TimeoutError(f"no JSON line from {process.args[0]} within {timeout}s")
    finally:
        selector.close()
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args[0]} exited with {process.wait()} before printing its line")
    return json.loads(line)


def stop_process(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the process does not exit within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    if process.stdout is not None:
        process.stdout.close()


@dataclass
class MockProviders:
    """A running `routerly-mock`: both providers' base URLs and their control endpoints."""

    openai_url: str  # "http://127.0.0.1:P/v1", as the OpenAI SDK takes it
    anthropic_url: str  # "http://127.0.0.1:Q", as the Anthropic SDK takes it
    api_key: str

    def _control_url(self, provider: str, action: str) -> str:
        base = self.openai_url.removesuffix("/v1") if provider == "openai" else self.anthropic_url
        return f"{base}/_mock/{action}"

    def requests(self, provider: str) -> list[dict]:
        """Recorded requests of `provider` ("openai" or "anthropic"), oldest first."""
        response = httpx.get(self._control_url(provider, "requests"), timeout=5)
        response.raise_for_status()
        return response.json()

    def fail_next(self, provider: str, count: int, status: int) -> None:
        """The next `count` chat requests to `provider` answer `status`."""
        response = httpx.post(
            self._control_url(provider, "fail"), json={"count": count, "status": status}, timeout=5
        )
        response.raise_for_status()

    def reset(self) -> None:
        """Forget recorded requests and pending failures on both providers."""
        for provider in ("openai", "anthropic"):
            httpx.post(self._control_url(provider, "reset"), timeout=5).raise_for_status()


def start_mock(api_key: str = MOCK_API_KEY, *extra_args: str) -> tuple[subprocess.Popen, MockProviders]:
    """Starts `routerly-mock` on free loopback ports; the caller stops it with `stop_process`."""
    binary = find_binary("ROUTERLY_MOCK_BIN", "target/debug/routerly-mock")
    process = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--api-key", api_key, *extra_args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        urls = read_json_line(process)
    except BaseException:
        stop_process(process)
        raise
    return process, MockProviders(urls["openai"], urls["anthropic"], api_key)


@pytest.fixture
def mock() -> Iterator[MockProviders]:
    """A fresh `routerly-mock` for one test."""
    process, providers = start_mock()
    try:
        yield providers
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def mock_session() -> Iterator[MockProviders]:
    """One `routerly-mock` shared by the session (reset it where a test counts requests)."""
    process, providers = start_mock()
    try:
        yield providers
    finally:
        stop_process(process)
