"""Providers behind an outbound proxy: with `HTTP_PROXY` set, calls to providers go through
it (as every HTTP client's users expect); `NO_PROXY` exempts hosts; without either, calls go
straight to the provider."""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Iterator

import openai
import pytest

from conftest import OPENAI_MODEL, Routerly, spawn_routerly


class ForwardingProxy(http.server.ThreadingHTTPServer):
    """A plain HTTP forward proxy: takes absolute-form requests, forwards them, and keeps
    what it saw."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.seen: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        target = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.seen.append({"url": self.path, "authorization": self.headers.get("authorization")})
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {name: value for name, value in self.headers.items() if name.lower() not in ("proxy-connection", "connection")}
        upstream.request("POST", target.path + (f"?{target.query}" if target.query else ""), body, headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def proxy() -> Iterator[ForwardingProxy]:
    server = ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def restart_with_env(routerly: Routerly, **env: str) -> None:
    """Restarts the service with `env` added (the CLI keeps its own environment)."""
    routerly.stop()
    service_env = {key: value for key, value in routerly.env.items() if "proxy" not in key.lower()}
    service_env.update(env)
    routerly.process, routerly.url = spawn_routerly(routerly.home, service_env, routerly.log_path)


def ask(routerly: Routerly, stream: bool = False) -> str:
    client = openai.OpenAI(base_url=f"{routerly.url}/v1", api_key=routerly.token, max_retries=0)
    messages = [{"role": "user", "content": "through the proxy"}]
    if stream:
        chunks = client.chat.completions.create(model=OPENAI_MODEL.id, messages=messages, stream=True)
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    answer = client.chat.completions.create(model=OPENAI_MODEL.id, messages=messages)
    return answer.choices[0].message.content


def test_calls_go_through_the_proxy_the_environment_names(routerly: Routerly, proxy: ForwardingProxy):
    restart_with_env(routerly, HTTP_PROXY=proxy.url)
    direct_answer = ask(routerly)
    assert direct_answer, "the proxy forwarded the answer"
    assert ask(routerly, stream=True)
    assert len(proxy.seen) == 2, proxy.seen
    for seen in proxy.seen:
        assert seen["url"].startswith("http://127.0.0.1:") and seen["url"].endswith("/chat/completions")
        assert seen["authorization"] and seen["authorization"].startswith("Bearer ")


def test_no_proxy_exempts_a_host_and_no_variable_means_direct(routerly: Routerly, proxy: ForwardingProxy):
    restart_with_env(routerly, HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1")
    assert ask(routerly)
    restart_with_env(routerly)
    assert ask(routerly, stream=True)
    assert proxy.seen == []
