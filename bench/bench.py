#!/usr/bin/env python3
"""Routerly's benchmark: the same instant mock upstream reached directly, through one plain
nginx reverse-proxy hop (the floor of one proxy hop), through Routerly, and with --peers
through LiteLLM and Portkey.

Run it with `./bench/run.sh` (which builds the release binary and installs wrk and nginx).
Only the Python standard library is used here. Processes are pinned with taskset: the
gateway under test on one core, the mock and the load generator on the other. The runs of a
cell take turns with the other targets' (round after round), and each cell against nginx is
also given as the median of its rounds' shares, as `bench/turns.py` does for two targets.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = Path(os.environ.get("ROUTERLY_BENCH_BIN_DIR", ROOT / "target" / "release"))
CONCURRENCIES = [1, 16, 64]
# Word chunks in the long stream that measures per-event cost (plus role, finish, usage, [DONE]).
LONG_STREAM_WORDS = 1000
LONG_STREAM_EVENTS = LONG_STREAM_WORDS + 4
MODES = ["chat", "stream"]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CHAT_ANSWER = json.dumps({
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Hello! This is a fixed answer from the benchmark mock.",
                    "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26},
    "system_fingerprint": "fp_bench",
}, separators=(",", ":"))


def sse_answer(long_words: int = 0) -> str:
    """A fixed stream of 20 chunks: role, 17 words, finish, usage; then [DONE]. With
    `long_words`, that many word chunks instead (the long stream of the per-event figures)."""
    def chunk(delta, finish=None, usage=None, choices=True):
        body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                "model": "gpt-4o-mini", "system_fingerprint": "fp_bench",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                if choices else []}
        if usage is not None:
            body["usage"] = usage
        return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"
    words = "Hello there, this is a fixed streamed answer from the benchmark mock, sent as exactly seventeen words.".split()
    assert len(words) == 17, len(words)
    if long_words:
        words = [words[i % len(words)] for i in range(long_words)]
    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": (" " if i else "") + word}) for i, word in enumerate(words)]
    parts.append(chunk({}, finish="stop"))
    parts.append(chunk(None, usage={"prompt_tokens": 14, "completion_tokens": 17, "total_tokens": 31},
                       choices=False))
    parts.append("data: [DONE]\n\n")
    return "".join(parts)


def request_body(model: str, stream: bool) -> str:
    body = {"model": model, "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hello in one short sentence, please."}],
        "max_tokens": 64}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0, proc=None) -> None:
    """Waits for a listener on `port`; with `proc`, gives up as soon as that process exits and
    quotes the end of its log, since the run's folder, logs and all, is removed at exit."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.popen.poll() is not None:
                break
            time.sleep(0.05)
    if proc is None:
        raise RuntimeError(f"nothing listens on port {port} after {timeout}s")
    status = "nothing listens" if proc.popen.returncode is None else f"exited ({proc.popen.returncode})"
    tail = (WORK / f"{proc.name}.log").read_text(errors="replace").splitlines()[-20:]
    raise RuntimeError(f"{proc.name} is not up on port {port}: {status}; the end of its log:\n" + "\n".join(tail))


class Proc:
    """A child process pinned to `cpus`, stopped at exit."""
    all = []

    def __init__(self, name, argv, cpus, env=None, stdout=None, cwd=None):
        self.name = name
        log = open(WORK / f"{name}.log", "ab")
        self.popen = subprocess.Popen(["taskset", "-c", cpus, *argv], env=env, cwd=cwd,
                                      stdout=stdout if stdout is not None else log, stderr=log,
                                      start_new_session=True)
        Proc.all.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def tree(self):
        """This process and its descendants."""
        pids, frontier = [self.pid], [self.pid]
        while frontier:
            parent = frontier.pop()
            # Every thread's list: a child forked from another thread than the main one is
            # listed only under that thread.
            for children in Path(f"/proc/{parent}/task").glob("*/children"):
                try:
                    found = children.read_text().split()
                except OSError:
                    found = []
                for child in map(int, found):
                    pids.append(child)
                    frontier.append(child)
        return pids

    def cpu_seconds(self):
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                pass
        return total / ticks

    def rss_mb(self, field="VmRSS"):
        total = 0
        for pid in self.tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self):
        """Stops the process and all its descendants, a peer's workers included: the tree is
        taken first, since once the parent is gone its children are no longer found from it,
        and a child that made its own session is out of reach of the group signal."""
        members = [(pid, start) for pid in self.tree() if (start := started_at(pid)) is not None]
        self.signal_group(signal.SIGTERM)
        signal_alive(members, signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline and any(started_at(pid) == start for pid, start in members):
            time.sleep(0.05)
        self.signal_group(signal.SIGKILL)
        signal_alive(members, signal.SIGKILL)
        self.popen.wait()

    def signal_group(self, sig):
        # Until the parent is reaped (the wait at the end of stop), its group id is ours.
        if self.popen.returncode is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass


def started_at(pid):
    """The start time of a running process (a zombie has ended), None when there is none: with
    the pid it names the process, whose pid a later one may get."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def signal_alive(members, sig):
    for pid, start in members:
        if started_at(pid) == start:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def start_nginx(name, server_block, cpus):
    conf = WORK / f"{name}.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {WORK}/{name}.pid;
error_log {WORK}/{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path {WORK}/{name}-body;
  proxy_temp_path {WORK}/{name}-proxy;
  {server_block}
}}
""")
    return Proc(name, [NGINX, "-p", str(WORK), "-c", str(conf), "-e", f"{WORK}/{name}.error.log"], cpus)


def start_mock(cpus):
    port = free_port()
    # Static files; a POST to a static file is a 405 that `error_page` turns into the file.
    www = WORK / "www"
    (www / "v1" / "chat").mkdir(parents=True)
    (www / "stream" / "v1" / "chat").mkdir(parents=True)
    (www / "long" / "v1" / "chat").mkdir(parents=True)
    (www / "long" / "v1" / "chat" / "completions").write_text(sse_answer(LONG_STREAM_WORDS))
    (www / "v1" / "chat" / "completions").write_text(CHAT_ANSWER)
    (www / "stream" / "v1" / "chat" / "completions").write_text(sse_answer())
    start_nginx("mock", f"""
  server {{
    listen 127.0.0.1:{port};
    root {www};
    error_page 405 =200 $uri;
    location = /v1/chat/completions {{ types {{ }} default_type application/json; }}
    location = /stream/v1/chat/completions {{ types {{ }} default_type text/event-stream; }}
    location = /long/v1/chat/completions {{ types {{ }} default_type text/event-stream; }}
  }}""", cpus)
    wait_port(port)
    return port


def start_nginx_hop(mock_port, cpus):
    port = free_port()
    proc = start_nginx("nginx-hop", f"""
  upstream mock {{ server 127.0.0.1:{mock_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}""", cpus)
    wait_port(port)
    return port, proc


def run_cli(env, *args):
    out = subprocess.run([str(RELEASE / "routerly"), *args], env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout


def start_routerly(mock_port, slow_mock_url, cpus):
    home = WORK / "routerly-home"
    env = dict(os.environ, ROUTERLY_HOME=str(home), XDG_CONFIG_HOME=str(WORK / "xdg"),
               ROUTERLY_LOG=os.environ.get("ROUTERLY_LOG", "info"))
    port = free_port()
    proc = Proc("routerly", [str(RELEASE / "routerly"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                cpus, env=env)
    wait_port(port)
    url = f"http://127.0.0.1:{port}"
    run_cli(env, "setup", "--url", url, "--email", "bench@example.com", "--password", "bench-password-1")
    for model_id, endpoint in [("bench-chat", f"http://127.0.0.1:{mock_port}/v1"),
                               ("bench-stream", f"http://127.0.0.1:{mock_port}/stream/v1"),
                               ("bench-long", f"http://127.0.0.1:{mock_port}/long/v1"),
                               ("bench-slow", slow_mock_url)]:
        run_cli(env, "model", "add", "--id", model_id, "--provider", "openai", "--endpoint", endpoint,
                "--api-key", "sk-bench-upstream", "--upstream-model", "gpt-4o-mini",
                "--input-price", "0.15", "--output-price", "0.6")
    project = json.loads(run_cli(env, "project", "create", "--name", "bench", "--json"))
    project_key = project.get("slug") or project["id"]
    for model_id in ["bench-chat", "bench-stream", "bench-long", "bench-slow"]:
        run_cli(env, "project", "model", "add", project_key, model_id)
    token = json.loads(run_cli(env, "project", "token", "create", project_key, "--json"))["token"]
    routed_tokens = setup_routed(env, mock_port)
    return port, proc, token, home, routed_tokens


ROUTING_POLICIES = ["cheapest", "health", "performance", "capability", "context"]


def setup_routed(env, mock_port):
    """Two projects that route `auto` between two models on the same mock (the second twice
    the price) with the policies of ROUTING_POLICIES enabled: the cost of routing beside the
    plain run, which names one model and has no policy. Returns a token per mode."""
    tokens = {}
    for mode, path in [("chat", "/v1"), ("stream", "/stream/v1")]:
        models = []
        for suffix, price in [("a", 1), ("b", 2)]:
            model_id = f"bench-routed-{mode}-{suffix}"
            run_cli(env, "model", "add", "--id", model_id, "--provider", "openai", "--endpoint",
                    f"http://127.0.0.1:{mock_port}{path}", "--api-key", "sk-bench-upstream",
                    "--upstream-model", "gpt-4o-mini", "--input-price", str(0.15 * price),
                    "--output-price", str(0.6 * price))
            models.append(model_id)
        project = json.loads(run_cli(env, "project", "create", "--name", f"bench-routed-{mode}", "--json"))
        key = project.get("slug") or project["id"]
        for model_id in models:
            run_cli(env, "project", "model", "add", key, model_id)
        for policy in ROUTING_POLICIES:
            run_cli(env, "project", "routing", "policy", "enable", key, policy)
        run_cli(env, "project", "routing", "policy", "reorder", key, ",".join(ROUTING_POLICIES))
        tokens[mode] = json.loads(run_cli(env, "project", "token", "create", key, "--json"))["token"]
    return tokens


WRK_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%f}}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean))
end
"""


def lua_string(text):
    return "[==[" + text + "]==]"


def wrk(url, body, headers, concurrency, duration, client_cpus, gateway):
    script = WORK / "wrk.lua"
    auth = "\n".join(f'wrk.headers["{k}"] = {lua_string(v)}' for k, v in headers.items())
    script.write_text(WRK_LUA.format(body=lua_string(body), auth=auth))
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            if gateway is not None:
                samples.append(gateway.rss_mb())
            stop.wait(0.2)
    sampler = threading.Thread(target=sample)
    cpu_before = gateway.cpu_seconds() if gateway else 0.0
    started = time.time()
    sampler.start()
    out = subprocess.run(["taskset", "-c", client_cpus, "wrk", "-t1", f"-c{concurrency}", f"-d{duration}s",
                          "--timeout", "10s", "-s", str(script), url], capture_output=True, text=True, check=True)
    stop.set()
    sampler.join()
    wall = time.time() - started
    line = next(l for l in out.stdout.splitlines() if l.startswith("WRKJSON "))
    result = json.loads(line[len("WRKJSON "):])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    if gateway is not None:
        cpu = gateway.cpu_seconds() - cpu_before
        result["cpu_pct"] = 100 * cpu / wall
        # The gateway's CPU time (user and system) per request: what its core spends on one,
        # whichever side of the run was the bottleneck.
        result["cpu_us_per_request"] = 1e6 * cpu / max(result["requests"], 1)
        result["rss_peak_mb"] = max(samples) if samples else gateway.rss_mb()
    return result


def raw_request(host_port, path, body, headers):
    head = [f"POST {path} HTTP/1.1", f"Host: {host_port}", "Content-Type: application/json",
            f"Content-Length: {len(body.encode())}", "Accept: text/event-stream"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def read_response(sock, first_marker=b"data:"):
    """Reads one HTTP/1.1 response; returns (seconds to first `data:` byte, total seconds,
    event arrival times) measured from the call."""
    start = time.perf_counter()
    buf = b""
    header_end = -1
    first = None
    arrivals = []
    length = None
    while True:
        chunk = sock.recv(65536)
        now = time.perf_counter()
        if not chunk:
            raise RuntimeError("connection closed mid-response")
        buf += chunk
        if header_end < 0:
            header_end = buf.find(b"\r\n\r\n")
            if header_end >= 0:
                head = buf[:header_end].decode("latin-1").lower()
                status = head.split("\r\n", 1)[0]
                if " 200 " not in status + " ":
                    raise RuntimeError(f"unexpected answer: {buf[:300]!r}")
                for line in head.split("\r\n"):
                    if line.startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
        if header_end >= 0:
            body = buf[header_end + 4:]
            count = body.count(b"\ndata:") + (1 if body.startswith(first_marker) or b"\r\ndata:" in body[:16] else 0)
            while len(arrivals) < count:
                arrivals.append(now - start)
            if first is None and first_marker in body:
                first = now - start
            if length is not None and len(body) >= length:
                break
            if length is None and body.endswith(b"\r\n0\r\n\r\n"):
                break
    return first, time.perf_counter() - start, arrivals


def stream_timing(port, path, body, headers, requests, warmup):
    """Time to first event and total time of streamed answers, one at a time on one
    keep-alive connection."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = raw_request(f"127.0.0.1:{port}", path, body, headers)
    firsts, totals = [], []
    for index in range(warmup + requests):
        sock.sendall(payload)
        first, total, _ = read_response(sock)
        if index >= warmup:
            firsts.append(first * 1e6)
            totals.append(total * 1e6)
    sock.close()
    return {"ttfb_p50_us": pct(firsts, 50), "ttfb_p90_us": pct(firsts, 90), "ttfb_p99_us": pct(firsts, 99),
            "total_p50_us": pct(totals, 50), "total_p99_us": pct(totals, 99), "requests": requests}


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def buffering_check(routerly_port, token):
    """Streams through Routerly from a mock that waits 40 ms between events: each event must
    reach the client on its own, not bunched at the end."""
    body = json.dumps({"model": "bench-slow", "stream": True, "messages": [
        {"role": "user", "content": "[mock:chunk_delay_ms=40] one two three four five six"}]})
    sock = socket.create_connection(("127.0.0.1", routerly_port))
    sock.sendall(raw_request(f"127.0.0.1:{routerly_port}", "/v1/chat/completions", body,
                             {"Authorization": f"Bearer {token}"}))
    _, total, arrivals = read_response(sock)
    sock.close()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    spread = arrivals[-1] - arrivals[0] if arrivals else 0
    return {"events": len(arrivals), "first_ms": arrivals[0] * 1e3 if arrivals else None,
            "last_ms": arrivals[-1] * 1e3 if arrivals else None, "total_ms": total * 1e3,
            "median_gap_ms": statistics.median(gaps) * 1e3 if gaps else None,
            "streams_per_event": bool(arrivals) and spread > 0.5 * 0.040 * (len(arrivals) - 2)}


PEERS = ROOT / "target" / "bench-peers"
# The peer versions this bench was checked with; a newer release may need new work here.
LITELLM = "litellm[proxy]==1.108.7"
# Portkey runs on @hono/node-server, whose Response from 1.14 on keeps the headers of the
# upstream `fetch` answer it wraps; those are immutable, so Portkey's header edits fail on
# every streamed answer (500, "TypeError: immutable"). 1.13.8 copies them; @hono/node-ws
# 1.2.0 is the last that accepts it (later ones want node-server ^1.19).
PORTKEY = {"@portkey-ai/gateway": "1.15.2", "@hono/node-server": "1.13.8", "@hono/node-ws": "1.2.0"}
# LiteLLM fetches its model cost map from GitHub at start (retried with back-off, ~8 s, before
# it keeps its packaged copy), and other files from there when first needed (Anthropic beta
# headers, some endpoints). The bench reaches only 127.0.0.1: all of them read the packaged
# copies, and the opt-in usage telemetry is vetoed outright.
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_TELEMETRY_DISABLED": "True",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
}


def install_litellm():
    """A venv with the pinned LiteLLM, made once (pip from PyPI)."""
    venv = PEERS / "litellm-venv"
    version = LITELLM.split("==")[1]
    if not list(venv.glob(f"lib/python*/site-packages/litellm-{version}.dist-info")):
        print(f"installing {LITELLM} into {venv}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", LITELLM], check=True)
    return venv


def install_portkey():
    """The pinned Portkey gateway under its own npm prefix, made once (npm registry)."""
    prefix = PEERS / "portkey"

    def installed(name):
        try:
            return json.loads((prefix / "node_modules" / name / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return None
    if any(installed(name) != version for name, version in PORTKEY.items()):
        print(f"installing {', '.join(PORTKEY)} into {prefix}", file=sys.stderr, flush=True)
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(prefix), "--silent",
                        *(f"{name}@{version}" for name, version in PORTKEY.items())], check=True)
    return prefix


def start_litellm(mock_port, cpus):
    venv = install_litellm()
    config = WORK / "litellm.yaml"
    config.write_text(f"""model_list:
  - model_name: bench-chat
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{mock_port}/v1", api_key: sk-bench}}
  - model_name: bench-stream
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{mock_port}/stream/v1", api_key: sk-bench}}
general_settings: {{master_key: sk-litellm-bench}}
""")
    port = free_port()
    # One worker: the gateway has one core, as Routerly has.
    proc = Proc("litellm", [str(venv / "bin" / "litellm"), "--config", str(config), "--port", str(port),
                            "--host", "127.0.0.1", "--num_workers", "1"], cpus,
                env=dict(os.environ, **LITELLM_ENV), cwd=str(WORK))  # what it writes stays in WORK
    wait_port(port, timeout=180, proc=proc)
    return port, proc


def start_portkey(cpus):
    prefix = install_portkey()
    port = free_port()
    entry = prefix / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    # `--port=N` is the only form it reads; `--headless` leaves out the log-viewer UI, which
    # a deployment would not serve either.
    proc = Proc("portkey", ["node", str(entry), f"--port={port}", "--headless"], cpus, cwd=str(prefix))
    wait_port(port, timeout=120, proc=proc)
    return port, proc


def fmt_ms(us):
    return "—" if us is None else f"{us / 1000:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is reported")
    parser.add_argument("--peers", action="store_true", help="also measure LiteLLM and Portkey")
    parser.add_argument("--gateway-cpu", default="1", help="core(s) of the gateway under test")
    parser.add_argument("--client-cpu", default="0", help="core(s) of the mock and the load generator")
    parser.add_argument("--stream-requests", type=int, default=2000, help="sequential streams timed per target")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where the JSON goes")
    parser.add_argument("--latest", action="store_true", help="also rewrite bench/LATEST.md")
    args = parser.parse_args()

    global WORK
    WORK = Path(tempfile.mkdtemp(prefix="routerly-bench-"))
    try:
        results = run(args)
    finally:
        for proc in reversed(Proc.all):
            proc.stop()
        shutil.rmtree(WORK, ignore_errors=True)
    report(results, args)


def run(args):
    gcpu, ccpu = args.gateway_cpu, args.client_cpu
    mock_port = start_mock(ccpu)
    # A Proc like the others, so that it is stopped too when a later step fails.
    slow = Proc("slow-mock", [str(RELEASE / "routerly-mock"), "--record-limit", "0"], ccpu, stdout=subprocess.PIPE)
    slow_urls = json.loads(slow.popen.stdout.readline())
    hop_port, hop = start_nginx_hop(mock_port, gcpu)
    routerly_port, routerly, token, home, routed_tokens = start_routerly(mock_port, slow_urls["openai"], gcpu)
    # Idle means after the set-up logins' password hashes are given back (2 s without one).
    time.sleep(3.0)
    idle_rss = routerly.rss_mb()

    targets = [
        {"name": "direct", "port": mock_port, "proc": None, "auth": {},
         "path": {"chat": "/v1/chat/completions", "stream": "/stream/v1/chat/completions"},
         "model": {"chat": "gpt-4o-mini", "stream": "gpt-4o-mini"}},
        {"name": "nginx", "port": hop_port, "proc": hop, "auth": {},
         "path": {"chat": "/v1/chat/completions", "stream": "/stream/v1/chat/completions"},
         "model": {"chat": "gpt-4o-mini", "stream": "gpt-4o-mini"}},
        {"name": "routerly", "port": routerly_port, "proc": routerly, "auth": {"Authorization": f"Bearer {token}"},
         "path": {"chat": "/v1/chat/completions", "stream": "/v1/chat/completions"},
         "model": {"chat": "bench-chat", "stream": "bench-stream"}},
        {"name": "routed", "port": routerly_port, "proc": routerly,
         "auth": {}, "auth_by_mode": {mode: {"Authorization": f"Bearer {routed_tokens[mode]}"} for mode in MODES},
         "path": {"chat": "/v1/chat/completions", "stream": "/v1/chat/completions"},
         "model": {"chat": "auto", "stream": "auto"}},
    ]
    if args.peers:
        port, proc = start_litellm(mock_port, gcpu)
        targets.append({"name": "litellm", "port": port, "proc": proc,
                        "auth": {"Authorization": "Bearer sk-litellm-bench"},
                        "path": {"chat": "/v1/chat/completions", "stream": "/v1/chat/completions"},
                        "model": {"chat": "bench-chat", "stream": "bench-stream"}})
        port, proc = start_portkey(gcpu)
        targets.append({"name": "portkey", "port": port, "proc": proc,
                        "auth": {"Authorization": "Bearer sk-bench", "x-portkey-provider": "openai"},
                        "custom_host": {"chat": f"http://127.0.0.1:{mock_port}/v1",
                                        "stream": f"http://127.0.0.1:{mock_port}/stream/v1"},
                        "path": {"chat": "/v1/chat/completions", "stream": "/v1/chat/completions"},
                        "model": {"chat": "gpt-4o-mini", "stream": "gpt-4o-mini"}})
    for target in targets:
        if target["proc"] is not None:
            target["idle_rss_mb"] = target["proc"].rss_mb()
    results = {"machine": machine(), "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
               "duration_s": args.duration, "repeat": args.repeat, "pinning": {"gateway": gcpu, "client": ccpu},
               "load": [], "streams": [], "routerly_idle_rss_mb": idle_rss}

    # The runs of a cell take turns with the other targets' runs of the same mode and
    # concurrency (round after round, in the targets' order), so that a slow spell of a shared
    # machine weighs on every target alike rather than on whichever ran during it.
    for mode in MODES:
        requests = {}
        for target in targets:
            headers = dict(target.get("auth_by_mode", {}).get(mode, target["auth"]))
            if "custom_host" in target:
                headers["x-portkey-custom-host"] = target["custom_host"][mode]
            body = request_body(target["model"][mode], mode == "stream")
            url = f"http://127.0.0.1:{target['port']}{target['path'][mode]}"
            requests[target["name"]] = (url, body, headers)
        for concurrency in CONCURRENCIES:
            rounds = [{target["name"]: wrk(*requests[target["name"]], concurrency, args.duration, ccpu, target["proc"])
                       for target in targets} for _ in range(args.repeat)]
            for target in targets:
                runs = sorted((r[target["name"]] for r in rounds), key=lambda r: r["rps"])
                cell = dict(runs[len(runs) // 2])
                cell.update(target=target["name"], mode=mode, concurrency=concurrency,
                            rps_runs=[round(r[target["name"]]["rps"]) for r in rounds])
                if target["name"] not in ("direct", "nginx"):
                    # Each round's requests per second over nginx's in the same round.
                    cell["rounds_vs_nginx"] = [r[target["name"]]["rps"] / r["nginx"]["rps"] for r in rounds]
                print(f"  {target['name']:>8} {mode:>6} c={concurrency:<3} {cell['rps']:9.0f} req/s  "
                      f"p50 {cell['p50_us'] / 1000:.3f} ms  p99 {cell['p99_us'] / 1000:.3f} ms  "
                      f"errors {cell['errors'] + cell['status_errors']}", file=sys.stderr, flush=True)
                results["load"].append(cell)
        if mode == "stream":
            for target in targets:
                _url, body, headers = requests[target["name"]]
                timing = stream_timing(target["port"], target["path"][mode], body, headers,
                                       args.stream_requests, warmup=100)
                timing["target"] = target["name"]
                results["streams"].append(timing)
    for target in targets:
        if target["proc"] is not None:
            target["peak_rss_mb"] = target["proc"].rss_mb("VmHWM")
    results["events"] = long_streams(targets, args, ccpu)
    results["memory"] = {t["name"]: {"idle_rss_mb": t.get("idle_rss_mb"), "peak_rss_mb": t.get("peak_rss_mb")}
                         for t in targets if t["proc"] is not None and t["name"] != "routed"}
    results["memory"]["routerly"]["peak_rss_mb"] = routerly.rss_mb("VmHWM")
    results["routing_policies"] = ROUTING_POLICIES
    results["buffering"] = buffering_check(routerly_port, token)
    # The active log and the rotated ones beside it (`usage-*.jsonl`).
    results["usage_records"] = sum(sum(1 for _ in path.open()) for path in (home / "data").glob("usage*.jsonl"))
    return results


def long_streams(targets, args, client_cpus):
    """Per-event cost: a stream of LONG_STREAM_EVENTS events, under load (events per second
    through the gateway's one core) and one at a time (time added per event over direct)."""
    rows = []
    for target in targets:
        if target["name"] not in ("direct", "nginx", "routerly"):
            continue
        path = "/long/v1/chat/completions" if target["name"] != "routerly" else "/v1/chat/completions"
        model = "bench-long" if target["name"] == "routerly" else "gpt-4o-mini"
        body = request_body(model, True)
        runs = [wrk(f"http://127.0.0.1:{target['port']}{path}", body, target["auth"], 16, args.duration, client_cpus,
                    target["proc"]) for _ in range(args.repeat)]
        runs.sort(key=lambda r: r["rps"])
        loaded = runs[len(runs) // 2]
        timing = stream_timing(target["port"], path, body, target["auth"], max(20, args.stream_requests // 20),
                               warmup=10)
        row = {"target": target["name"], "events_per_s": loaded["rps"] * LONG_STREAM_EVENTS,
               "cpu_pct": loaded.get("cpu_pct"), "total_p50_us": timing["total_p50_us"]}
        print(f"  {target['name']:>8} long stream c=16 {row['events_per_s']:11.0f} events/s  "
              f"one stream {timing['total_p50_us'] / 1000:.2f} ms", file=sys.stderr, flush=True)
        rows.append(row)
    direct = next(r for r in rows if r["target"] == "direct")
    for row in rows:
        row["added_per_event_us"] = (row["total_p50_us"] - direct["total_p50_us"]) / LONG_STREAM_EVENTS
    return rows


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def cell(results, target, mode, concurrency):
    return next((c for c in results["load"] if c["target"] == target and c["mode"] == mode
                 and c["concurrency"] == concurrency), None)


def round_share(cell):
    """The median of a cell's rounds' shares of nginx's requests per second, as a percentage."""
    shares = cell.get("rounds_vs_nginx")
    return f"{100 * statistics.median(shares):.0f} %" if shares else "—"


def report(results, args):
    lines = []
    m = results["machine"]
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}; "
                 f"gateway pinned to CPU {results['pinning']['gateway']}, mock and wrk to CPU "
                 f"{results['pinning']['client']}; {results['duration_s']} s per cell, median of "
                 f"{results['repeat']}; {results['started'][:16]} UTC.")
    lines.append("")
    lines.append("| target | mode | conc | req/s | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms "
                 "| req/s vs nginx | gateway CPU % | gateway CPU µs/req | peak RSS MB |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in results["load"]:
        direct = cell(results, "direct", c["mode"], c["concurrency"])
        nginx = cell(results, "nginx", c["mode"], c["concurrency"])
        added50 = c["p50_us"] - direct["p50_us"] if c["target"] != "direct" else None
        added99 = c["p99_us"] - direct["p99_us"] if c["target"] != "direct" else None
        ratio = f"{c['rps'] / nginx['rps']:.2f}" if c["target"] not in ("direct", "nginx") else "—"
        c["added_p50_us"], c["added_p99_us"] = added50, added99
        lines.append(f"| {c['target']} | {c['mode']} | {c['concurrency']} | {c['rps']:.0f} | {fmt_ms(c['p50_us'])} "
                     f"| {fmt_ms(c['p90_us'])} | {fmt_ms(c['p99_us'])} | {fmt_ms(added50)} | {fmt_ms(added99)} "
                     f"| {ratio} | {c.get('cpu_pct', 0):.0f} | {c.get('cpu_us_per_request', 0):.1f} "
                     f"| {c.get('rss_peak_mb', 0):.1f} |"
                     if c["target"] != "direct" else
                     f"| direct | {c['mode']} | {c['concurrency']} | {c['rps']:.0f} | {fmt_ms(c['p50_us'])} "
                     f"| {fmt_ms(c['p90_us'])} | {fmt_ms(c['p99_us'])} | — | — | — | — | — | — |")
    lines.append("")
    lines.append("Streams one at a time (keep-alive, " f"{args.stream_requests} each): time to first event and total, "
                 "added over direct.")
    lines.append("")
    lines.append("| target | first event p50 ms | p99 ms | added p50 ms | total p50 ms | added total p50 ms |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    direct_stream = next(s for s in results["streams"] if s["target"] == "direct")
    for s in results["streams"]:
        s["added_ttfb_p50_us"] = s["ttfb_p50_us"] - direct_stream["ttfb_p50_us"]
        s["added_total_p50_us"] = s["total_p50_us"] - direct_stream["total_p50_us"]
        lines.append(f"| {s['target']} | {fmt_ms(s['ttfb_p50_us'])} | {fmt_ms(s['ttfb_p99_us'])} | "
                     f"{fmt_ms(s['added_ttfb_p50_us'] if s['target'] != 'direct' else None)} | "
                     f"{fmt_ms(s['total_p50_us'])} | "
                     f"{fmt_ms(s['added_total_p50_us'] if s['target'] != 'direct' else None)} |")

    if results.get("events"):
        lines.append("")
        lines.append(f"Long streams ({LONG_STREAM_EVENTS} events each): events per second at concurrency 16 through "
                     "the gateway's one core, and time added per event over direct (one stream at a time).")
        lines.append("")
        lines.append("| target | events/s c=16 | vs nginx | gateway CPU % | one stream p50 ms | added per event µs |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        nginx_events = next((r for r in results["events"] if r["target"] == "nginx"), None)
        for row in results["events"]:
            ratio = (f"{row['events_per_s'] / nginx_events['events_per_s']:.2f}"
                     if nginx_events and row["target"] not in ("direct", "nginx") else "—")
            lines.append(f"| {row['target']} | {row['events_per_s']:.0f} | {ratio} | "
                         f"{row['cpu_pct'] or 0:.0f} | {row['total_p50_us'] / 1000:.2f} | "
                         f"{row['added_per_event_us']:.2f} |" if row["target"] != "direct" else
                         f"| direct | {row['events_per_s']:.0f} | — | — | {row['total_p50_us'] / 1000:.2f} | — |")

    # Targets (reported, never asserted).
    r1, n1 = cell(results, "routerly", "chat", 1), cell(results, "nginx", "chat", 1)
    r64, n64 = cell(results, "routerly", "chat", 64), cell(results, "nginx", "chat", 64)
    rs64, ns64 = cell(results, "routerly", "stream", 64), cell(results, "nginx", "stream", 64)
    rs = next(s for s in results["streams"] if s["target"] == "routerly")
    ns = next(s for s in results["streams"] if s["target"] == "nginx")
    mem = results["memory"]["routerly"]
    peak_load = max(c.get("rss_peak_mb", 0) for c in results["load"] if c["target"] == "routerly")
    buffering = results["buffering"]

    def check(ok, text):
        return f"- {'met' if ok else '**missed**'}: {text}"
    targets = [
        check(r1["added_p50_us"] <= 2 * max(n1["added_p50_us"], 1),
              f"c=1 added p50 {fmt_ms(r1['added_p50_us'])} ms ≤ 2× nginx's {fmt_ms(n1['added_p50_us'])} ms"),
        check(r1["added_p99_us"] <= 3 * max(n1["added_p99_us"], 1),
              f"c=1 added p99 {fmt_ms(r1['added_p99_us'])} ms ≤ 3× nginx's {fmt_ms(n1['added_p99_us'])} ms"),
        check(r64["rps"] >= 0.5 * n64["rps"],
              f"c=64 throughput {r64['rps']:.0f} req/s ≥ 50 % of nginx's {n64['rps']:.0f} "
              f"({100 * r64['rps'] / n64['rps']:.0f} %; streaming {100 * rs64['rps'] / ns64['rps']:.0f} %; "
              f"the median of the rounds' shares {round_share(r64)} and {round_share(rs64)})"),
        check(min(r64["rps"] / n64["rps"], rs64["rps"] / ns64["rps"]) >= 0.75,
              f"c=64 throughput ≥ 75 % of nginx's for plain calls and for streams: "
              f"{100 * r64['rps'] / n64['rps']:.0f} % and {100 * rs64['rps'] / ns64['rps']:.0f} %"),
        check(rs["added_ttfb_p50_us"] <= 2 * max(ns["added_ttfb_p50_us"], 1),
              f"stream first-event overhead {fmt_ms(rs['added_ttfb_p50_us'])} ms ≤ 2× nginx's "
              f"{fmt_ms(ns['added_ttfb_p50_us'])} ms"),
        check(buffering["streams_per_event"],
              f"no per-chunk buffering: {buffering['events']} events 40 ms apart upstream arrive "
              f"{buffering['median_gap_ms']:.1f} ms apart (median)"),
        check(peak_load < 50, f"peak RSS under load {peak_load:.1f} MB < 50 MB (lifetime peak {mem['peak_rss_mb']:.1f} MB)"),
        check(results["routerly_idle_rss_mb"] < 20, f"idle RSS {results['routerly_idle_rss_mb']:.1f} MB < 20 MB"),
    ]
    if cell(results, "routed", "chat", 1) is not None:
        lines.append("")
        lines.append("`routed` is the same Routerly with `model: auto` in a project routing between two models "
                     f"on the same mock with {', '.join(results.get('routing_policies', []))} enabled; "
                     "`routerly` names one model and has no policy.")
        lines.append("")
        lines.append("| mode | conc | plain req/s | routed req/s | routed / plain | plain added p50 ms "
                     "| routed added p50 ms |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for mode in MODES:
            for concurrency in CONCURRENCIES:
                plain, routed = cell(results, "routerly", mode, concurrency), cell(results, "routed", mode, concurrency)
                lines.append(f"| {mode} | {concurrency} | {plain['rps']:.0f} | {routed['rps']:.0f} | "
                             f"{routed['rps'] / plain['rps']:.2f} | {fmt_ms(plain['added_p50_us'])} | "
                             f"{fmt_ms(routed['added_p50_us'])} |")
    lines.append("")
    lines.append("Targets:")
    lines.extend(targets)
    lines.append(f"- usage records written during the run: {results['usage_records']}")
    text = "\n".join(lines)
    print(text)
    results["table_markdown"] = text
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = results["started"][:19].replace(":", "").replace("-", "")
    path = out / f"bench-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {path}", file=sys.stderr)
    if args.latest:
        latest = ROOT / "bench" / "LATEST.md"
        latest.write_text("# Latest benchmark\n\nWritten by `./bench/run.sh --latest` "
                          f"(command: `{' '.join(['./bench/run.sh', *sys.argv[1:]])}`).\n\n{text}\n")
        print(f"wrote {latest}", file=sys.stderr)


if __name__ == "__main__":
    main()
