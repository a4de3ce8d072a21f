"""Floods and connection abuse against the real binary: a flood costs its sender, not the service.

- Logins: attempts are counted before the password is checked (per account-and-address and per
  address), and argon2 runs under a small concurrency cap with a short queue, so 400 concurrent
  logins neither blow up memory nor slow `/health` and proxied calls, and a stranger hammering
  the owner's account from one address does not lock the owner out elsewhere.
- Connections: slow request heads, idle keep-alive connections and stalled bodies are closed
  within the configured timeouts; SIGTERM closes stalled connections at once.
- Request bodies in flight share a memory budget: beyond it, 503 with `retry-after`.
- `trusted_proxies`: forwarded addresses are believed from listed peers only.

Client sockets are bound to other loopback addresses (127.0.0.0/8 is all loopback on Linux) to
act as other clients; 127.0.0.5 plays the trusted reverse proxy.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import shutil
import signal
import socket
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    OPENAI_MODEL,
    Routerly,
    spawn_routerly,
    start_routerly,
)

PROXY = "127.0.0.5"  # the trusted reverse proxy's address
HEADER_TIMEOUT_MS = 1000
BODY_TIMEOUT_MS = 1000
MAX_BODY = 1024 * 1024
BODY_BUDGET = 2 * MAX_BODY
HASHING = (2, 4)  # concurrency, queue
# How late a timed-out connection may be closed on a loaded 2-core machine: the timeouts are
# 1 s, the findings were sockets held 95 s and more, and SIGTERM waiting its 30 s grace.
LATE = 2.0


def restart_with(routerly: Routerly, **settings) -> Routerly:
    """Merges `settings` into the service's settings through `PATCH /api/settings` (so they
    land wherever the installation keeps them: settings.json, or PostgreSQL in shared mode)
    and restarts it, so that those read at start (connections) apply."""
    if settings:
        # From an address no test floods, so the login counts nothing the tests count.
        with httpx.Client(base_url=routerly.url, timeout=10,
                          transport=httpx.HTTPTransport(local_address="127.0.0.9")) as client:  # fmt: skip
            login = client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            assert login.status_code == 200, login.text
            headers = {"authorization": f"Bearer {login.json()['access_token']}"}
            current = client.get("/api/settings", headers=headers).json()
            changes = {
                key: {**current.get(key, {}), **value} if isinstance(value, dict) else value
                for key, value in settings.items()
            }
            patched = client.patch("/api/settings", headers=headers, json=changes)
            assert patched.status_code == 200, patched.text
    code = routerly.stop()
    assert code == 0, routerly.log_tail()
    process, url = spawn_routerly(routerly.home, routerly.env, routerly.log_path)
    routerly.process, routerly.url = process, url
    return routerly


@contextmanager
def flood_routerly(mock, **settings) -> Iterator[Routerly]:
    root = Path(tempfile.mkdtemp(prefix="routerly-flood-"))
    try:
        routerly = restart_with(start_routerly(mock, root), **settings)
        try:
            yield routerly
        finally:
            if routerly.process.poll() is None:
                routerly.process.kill()
                routerly.process.wait(5)
    finally:
        shutil.rmtree(root, ignore_errors=True)


DEFAULT_SETTINGS = dict(
    max_body_bytes=MAX_BODY,
    trusted_proxies=[PROXY],
    connections=dict(
        header_timeout_ms=HEADER_TIMEOUT_MS,
        body_timeout_ms=BODY_TIMEOUT_MS,
        body_memory_bytes=BODY_BUDGET,
        password_hashing_concurrency=HASHING[0],
        password_hashing_queue=HASHING[1],
    ),
)


@pytest.fixture(scope="module")
def flooded(mock_session) -> Iterator[Routerly]:
    with flood_routerly(mock_session, **DEFAULT_SETTINGS) as routerly:
        yield routerly


# ---- a minimal HTTP/1.1 client over raw sockets (cheap enough to run hundreds at once) -------


def host_port(routerly: Routerly) -> tuple[str, int]:
    host, port = routerly.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def build_request(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: routerly", "Connection: close"]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_response(raw: bytes) -> tuple[int, dict, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


async def async_request(routerly: Routerly, request: bytes, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    host, port = host_port(routerly)
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()
    return parse_response(raw)


def request(routerly: Routerly, request_bytes: bytes, source: str = "127.0.0.1", timeout: float = 30) -> tuple[int, dict, bytes]:
    host, port = host_port(routerly)
    with socket.create_connection((host, port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(request_bytes)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


def login_request(password: str, email: str = ADMIN_EMAIL, forwarded_for: str | None = None) -> bytes:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return build_request("POST", "/api/auth/login", json.dumps({"email": email, "password": password}).encode(), headers)


def chat_request(routerly: Routerly, text: str = "hello") -> bytes:
    body = json.dumps({"model": OPENAI_MODEL.alias, "messages": [{"role": "user", "content": text}]}).encode()
    return build_request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {routerly.token}"})


def metric(routerly: Routerly, name: str) -> float:
    _, _, body = request(routerly, build_request("GET", "/metrics"))
    match = re.search(rf"^{name} (\S+)$", body.decode(), re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def peak_rss_mb(routerly: Routerly) -> float:
    status = Path(f"/proc/{routerly.process.pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 1024


def timed(routerly: Routerly, request_bytes: bytes, expect: int = 200) -> float:
    started = time.monotonic()
    status, _, body = request(routerly, request_bytes)
    elapsed = time.monotonic() - started
    assert status == expect, (status, body[:300])
    return elapsed


# ---- logins -------------------------------------------------------------------------------


def test_a_login_flood_on_one_account_verifies_at_most_the_limit_and_the_owner_still_logs_in(flooded):
    routerly = flooded
    hashed_before = metric(routerly, "routerly_password_hashes_total")

    async def flood():
        return await asyncio.gather(
            *(async_request(routerly, login_request("wrong password")) for _ in range(200))
        )

    answers = asyncio.run(flood())
    statuses = [status for status, _, _ in answers]
    verified = metric(routerly, "routerly_password_hashes_total") - hashed_before
    assert set(statuses) <= {401, 429}, statuses
    # Attempts are counted before the password is checked: 5 per account and address.
    assert 1 <= statuses.count(401) <= 5, statuses.count(401)
    assert verified == statuses.count(401), (verified, statuses.count(401))
    assert all(
        int(headers["retry-after"]) >= 1 for status, headers, _ in answers if status == 429
    )
    # The stranger's address is locked out of this account; the owner elsewhere is not.
    status, _, body = request(routerly, login_request(ADMIN_PASSWORD), source="127.0.0.2")
    assert status == 200, body
    assert json.loads(body)["access_token"]
    status, headers, _ = request(routerly, login_request(ADMIN_PASSWORD), source="127.0.0.1")
    assert status == 429 and int(headers["retry-after"]) > 60


def test_the_dummy_hash_for_unknown_emails_is_computed_at_start(mock_session):
    """So the first login with an unknown email takes one hash, like a known one."""
    with flood_routerly(mock_session) as routerly:
        assert metric(routerly, "routerly_password_hashes_total") == 1
        status, _, _ = request(routerly, login_request("whatever", email="nobody@example.com"))
        assert status == 401
        assert metric(routerly, "routerly_password_hashes_total") == 2


def memory_mb(routerly: Routerly) -> tuple[float, float]:
    """Resident and peak resident memory, in MB."""
    status = Path(f"/proc/{routerly.process.pid}/status").read_text()
    kb = lambda name: int(re.search(rf"^{name}:\s+(\d+) kB", status, re.MULTILINE).group(1))  # noqa: E731
    return kb("VmRSS") / 1024, kb("VmHWM") / 1024


def test_the_hashing_memory_is_given_back_when_logins_stop(mock_session):
    """A password hash holds 19 MiB while it runs. The hashing threads reuse it while logins
    keep coming and free it after 2 s without one, and it goes back to the system: an idle
    service is not 19 MiB larger for the dummy hash computed at start (it was), nor for the
    last login (glibc kept that block in its arena)."""
    with flood_routerly(mock_session) as routerly:
        time.sleep(3)
        idle, peak = memory_mb(routerly)
        assert idle <= peak - 15, ("the start-up hash stayed resident", idle, peak)
        for _ in range(3):
            status, _, _ = request(routerly, login_request(ADMIN_PASSWORD), source="127.0.0.7")
            assert status == 200
        held, _ = memory_mb(routerly)
        assert held >= idle + 15, (idle, held)
        time.sleep(3)
        freed, _ = memory_mb(routerly)
        assert freed <= idle + 5, ("the last login's hash stayed resident", idle, held, freed)


def test_400_concurrent_logins_keep_memory_small_and_the_service_fast(flooded):
    """Each from its own forwarded address (through the trusted proxy), so no login limit
    stops them: the hashing cap alone holds memory and CPU."""
    routerly = flooded
    for _ in range(3):  # warm up
        timed(routerly, build_request("GET", "/health"))
        timed(routerly, chat_request(routerly))
    # The unloaded times are measured before and after the flood, in the same run, so a
    # machine busy with other work raises them as it raises the times in the flood.
    health_idle = [timed(routerly, build_request("GET", "/health")) for _ in range(10)]
    chat_idle = [timed(routerly, chat_request(routerly)) for _ in range(10)]
    peak_before = peak_rss_mb(routerly)
    hashed_before = metric(routerly, "routerly_password_hashes_total")
    refused_before = metric(routerly, "routerly_password_hashing_refused_total")
    statuses: list[int] = []
    flooding = threading.Event()
    stop = threading.Event()

    async def one(index: int):
        address = f"10.{index // 250 % 250}.{index % 250}.{(index // 62500) % 250 + 1}"
        status, _, _ = await async_request(
            routerly, login_request(f"guess {index}", forwarded_for=address), source=PROXY
        )
        statuses.append(status)

    async def flood():
        counter = 400
        running = {asyncio.ensure_future(one(index)) for index in range(400)}
        flooding.set()
        while not stop.is_set():
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for _ in done:
                running.add(asyncio.ensure_future(one(counter)))
                counter += 1
        await asyncio.gather(*running)

    flooder = threading.Thread(target=lambda: asyncio.run(flood()))
    flooder.start()
    try:
        flooding.wait(10)
        time.sleep(0.5)
        health_flood = [timed(routerly, build_request("GET", "/health")) for _ in range(10)]
        chat_flood = [timed(routerly, chat_request(routerly)) for _ in range(10)]
    finally:
        stop.set()
        flooder.join(60)
    health_idle = statistics.median(health_idle + [timed(routerly, build_request("GET", "/health")) for _ in range(10)])
    chat_idle = statistics.median(chat_idle + [timed(routerly, chat_request(routerly)) for _ in range(10)])
    verified = metric(routerly, "routerly_password_hashes_total") - hashed_before
    refused = metric(routerly, "routerly_password_hashing_refused_total") - refused_before
    peak = peak_rss_mb(routerly)
    print(
        f"\n{len(statuses)} logins: {statuses.count(401)} verified (401), {statuses.count(429)} refused (429); "
        f"peak RSS {peak_before:.0f} MB before, {peak:.0f} MB after; /health {health_idle * 1000:.1f} ms idle, "
        f"{statistics.median(health_flood) * 1000:.1f} ms median / {max(health_flood) * 1000:.1f} ms max in the flood; "
        f"chat {chat_idle * 1000:.1f} ms idle, {statistics.median(chat_flood) * 1000:.1f} ms median / "
        f"{max(chat_flood) * 1000:.1f} ms max in the flood"
    )
    assert len(statuses) >= 400
    assert set(statuses) <= {401, 429}, set(statuses)
    assert statuses.count(429) == refused and refused > 0
    assert verified == statuses.count(401)
    assert peak < 256, f"peak RSS {peak:.0f} MB"
    # The bound is 100 ms over the unloaded time; the hashing cap keeps both cores
    # busy with argon2 meanwhile, and a CI machine runs other work, so the median gets
    # 250 ms and single samples 1.5 s. Before the cap a chat took 20 s in such a flood and
    # /health 2-3 s: ten times these bounds.
    assert statistics.median(health_flood) <= health_idle + 0.25, (health_idle, health_flood)
    assert statistics.median(chat_flood) <= chat_idle + 0.25, (chat_idle, chat_flood)
    assert max(health_flood) <= health_idle + 1.5, (health_idle, health_flood)
    assert max(chat_flood) <= chat_idle + 1.5, (chat_idle, chat_flood)


# ---- trusted proxies ----------------------------------------------------------------------


def test_forwarded_addresses_are_ignored_from_untrusted_peers(flooded):
    routerly = flooded
    # 20 failures from one address (whatever it claims to forward for) lock that address out.
    statuses = [
        request(routerly, login_request("wrong", f"nobody{i}@example.com", f"198.51.100.{i}"), source="127.0.0.9")[0]
        for i in range(21)
    ]
    assert statuses[:20] == [401] * 20 and statuses[20] == 429, statuses
    status, _, _ = request(
        routerly,
        build_request("POST", "/api/auth/login", json.dumps({"email": "x@example.com", "password": "x"}).encode(),
                      {"Forwarded": "for=198.51.100.77"}),
        source="127.0.0.9",
    )  # fmt: skip
    assert status == 429


def test_forwarded_addresses_are_believed_from_trusted_proxies(flooded):
    routerly = flooded
    # Through the proxy, each forwarded client has its own budget of failures...
    statuses = [
        request(routerly, login_request("wrong", f"someone{i}@example.com", f"203.0.113.{i}"), source=PROXY)[0]
        for i in range(30)
    ]
    assert statuses == [401] * 30, statuses
    # ...the rightmost untrusted hop is the client (a forged leftmost entry changes nothing)...
    for i in range(5):
        status, _, _ = request(routerly, login_request("wrong", forwarded_for=f"6.6.6.{i}, 203.0.113.200"), source=PROXY)
        assert status == 401
    status, _, _ = request(routerly, login_request(ADMIN_PASSWORD, forwarded_for="203.0.113.200"), source=PROXY)
    assert status == 429
    # ...and the log names the forwarded client, not the proxy.
    deadline = time.monotonic() + 5
    while "203.0.113.200" not in routerly.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, routerly.log_tail()
        time.sleep(0.05)
    status, _, body = request(
        routerly, login_request(ADMIN_PASSWORD, forwarded_for="203.0.113.201"), source=PROXY
    )
    assert status == 200
    # The audit log names the client address: the forwarded one through the trusted proxy,
    # the peer itself when an untrusted peer sends the same header.
    auth = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
    for source, name, expected in [(PROXY, "Audited via proxy", "203.0.113.77"), ("127.0.0.1", "Audited direct", "127.0.0.1")]:
        create = build_request(
            "POST", "/api/projects", json.dumps({"name": name}).encode(), {**auth, "X-Forwarded-For": "203.0.113.77"}
        )  # fmt: skip
        status, _, body = request(routerly, create, source=source)
        assert status == 201, body
        deadline = time.monotonic() + 5
        while True:
            _, _, body = request(routerly, build_request("GET", "/api/audit?limit=20", headers=auth))
            entries = [e for e in json.loads(body)["entries"] if name in json.dumps(e)]
            if entries:
                break
            assert time.monotonic() < deadline, body[:500]
            time.sleep(0.05)
        assert entries[0]["address"] == expected, entries[0]


def test_the_setup_gate_needs_the_token_for_forwarded_or_proxied_callers(mock_session, tmp_path):
    home = tmp_path / "home"
    env = {"ROUTERLY_HOME": str(home), "HOME": str(tmp_path), "ROUTERLY_LOG": "warn", "PATH": "/usr/bin:/bin"}
    process, url = spawn_routerly(home, env, tmp_path / "log")
    routerly = Routerly(process, url, home, env, tmp_path / "log", mock_session)
    try:
        status_path = build_request("GET", "/api/setup/status")

        def token_required(raw: bytes, source: str = "127.0.0.1") -> bool:
            status, _, body = request(routerly, raw, source=source)
            assert status == 200, body
            return json.loads(body)["setup_token_required"]

        assert token_required(status_path) is False
        # A same-host proxy that is not trusted: its forwarding header shows the caller is elsewhere.
        forwarded = build_request("GET", "/api/setup/status", headers={"X-Forwarded-For": "203.0.113.9"})
        assert token_required(forwarded) is True
        first_admin = build_request(
            "POST", "/api/setup/first-admin",
            json.dumps({"email": "a@example.com", "password": "a long password"}).encode(),
            {"X-Forwarded-For": "203.0.113.9"},
        )  # fmt: skip
        status, _, body = request(routerly, first_admin)
        assert status == 403, body
        assert routerly.stop() == 0
        settings = home / "config" / "settings.json"
        settings.write_text(json.dumps({**json.loads(settings.read_text()), "trusted_proxies": [PROXY]}))
        routerly.process, routerly.url = spawn_routerly(home, env, tmp_path / "log")
        # Through the trusted proxy, the forwarded address decides; a forwarded request is
        # never local (whatever it claims), a request from the proxy host itself is.
        assert token_required(forwarded, source=PROXY) is True
        local = build_request("GET", "/api/setup/status", headers={"X-Forwarded-For": "127.0.0.1"})
        assert token_required(local, source=PROXY) is True
        assert token_required(status_path, source=PROXY) is False
    finally:
        assert routerly.stop() == 0


# ---- connections --------------------------------------------------------------------------


def closed_after(sock: socket.socket, trickle: bytes | None = None, limit: float = 10.0) -> float:
    """Seconds until the server closes `sock`, sending `trickle` every 200 ms meanwhile."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            if trickle:
                sock.sendall(trickle)
            data = sock.recv(65536)
            if data == b"":
                return time.monotonic() - started
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    raise AssertionError(f"the connection stayed open for {limit} s")


def test_slow_heads_idle_connections_and_stalled_bodies_are_closed_within_their_timeouts(flooded):
    routerly = flooded
    host, port = host_port(routerly)
    timeout = HEADER_TIMEOUT_MS / 1000
    # Slowloris: a head that never ends, one header byte every 200 ms.
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: routerly\r\n")
        elapsed = closed_after(sock, trickle=b"X")
    assert timeout * 0.9 <= elapsed <= timeout + LATE, elapsed
    # Idle keep-alive after a complete request.
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: routerly\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        elapsed = closed_after(sock)
    assert timeout * 0.9 <= elapsed <= timeout + LATE, elapsed
    # A connection that never sends anything.
    with socket.create_connection((host, port)) as sock:
        elapsed = closed_after(sock)
    assert elapsed <= timeout + LATE, elapsed
    # A body that stalls: 408 in the caller's format, after the body timeout.
    with socket.create_connection((host, port)) as sock:
        head = chat_request(routerly).split(b"\r\n\r\n")[0].replace(b"Content-Length: ", b"Content-Length: 9")
        sock.sendall(head + b"\r\n\r\n" + b'{"model"')
        started = time.monotonic()
        sock.settimeout(BODY_TIMEOUT_MS / 1000 + 5)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
        elapsed = time.monotonic() - started
    status, _, body = parse_response(raw)
    assert status == 408, raw
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert BODY_TIMEOUT_MS / 1000 * 0.9 <= elapsed <= BODY_TIMEOUT_MS / 1000 + LATE, elapsed
    # The same on the management API, in its own error shape.
    with socket.create_connection((host, port)) as sock:
        head = build_request("POST", "/api/auth/login").split(b"\r\n\r\n")[0]
        sock.sendall(head.replace(b"Content-Length: 0", b"Content-Length: 50") + b"\r\n\r\n" + b'{"email"')
        started = time.monotonic()
        sock.settimeout(BODY_TIMEOUT_MS / 1000 + 5)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
        elapsed = time.monotonic() - started
    status, _, body = parse_response(raw)
    assert status == 408, raw
    assert json.loads(body)["error"]["code"] == "request_timeout", body
    assert BODY_TIMEOUT_MS / 1000 * 0.9 <= elapsed <= BODY_TIMEOUT_MS / 1000 + LATE, elapsed


def test_sigterm_closes_stalled_connections_at_once_and_lets_live_requests_finish(mock_session):
    settings = dict(shutdown_grace_seconds=30, connections=dict(header_timeout_ms=60_000, body_timeout_ms=60_000))
    with flood_routerly(mock_session, **settings) as routerly:
        host, port = host_port(routerly)
        stalled = []
        for index in range(60):
            sock = socket.create_connection((host, port))
            if index % 3 == 0:
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: routerly\r\n")  # slowloris
            elif index % 3 == 1:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: routerly\r\n\r\n")  # then idle
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            stalled.append(sock)  # else: connected, silent
        # A live request: a stream of ~1.5 s.
        live_result: list = []
        live = threading.Thread(
            target=lambda: live_result.append(
                request(routerly, chat_request(routerly, "[mock:chunk_delay_ms=150] one two three four five six seven eight nine ten"))
            )
        )
        live.start()
        time.sleep(0.3)
        started = time.monotonic()
        routerly.signal(signal.SIGTERM)
        closed = [closed_after(sock, limit=5) for sock in stalled]
        code = routerly.wait(10)
        exited = time.monotonic() - started
        live.join(10)
        for sock in stalled:
            sock.close()
        assert code == 0, routerly.log_tail()
        # Closed at once, not after the 30 s grace; the live stream takes ~1.5 s.
        assert max(closed) < LATE, max(closed)
        assert exited < 1.5 + 2 * LATE, exited
        assert live_result and live_result[0][0] == 200, live_result


def test_the_open_file_limit_is_raised_and_connections_beyond_the_cap_wait_their_turn(mock_session):
    """Started with a soft open-file limit of 1024 (the finding: it stayed there), Routerly
    raises it to the hard limit. With `max_connections` held by silent sockets, a new request
    waits in the accept queue (accept never fails) and is served once the head timeout frees a
    place."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the hard open-file limit is {hard}: nothing to raise")
    cap = 20
    settings = dict(connections=dict(max_connections=cap, header_timeout_ms=HEADER_TIMEOUT_MS))
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        context = flood_routerly(mock_session, **settings)
        routerly = context.__enter__()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        limits = Path(f"/proc/{routerly.process.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        raised_soft, raised_hard = line.split()[3:5]
        assert raised_soft == raised_hard, line
        host, port = host_port(routerly)
        held = [socket.create_connection((host, port)) for _ in range(cap)]
        time.sleep(0.2)
        started = time.monotonic()
        status, _, body = request(routerly, build_request("GET", "/health"), timeout=10)
        waited = time.monotonic() - started
        assert status == 200, body
        # Not served while the cap was held; served as the head timeout closed the silent ones.
        assert HEADER_TIMEOUT_MS / 1000 * 0.5 <= waited <= HEADER_TIMEOUT_MS / 1000 + 2 * LATE, waited
        for sock in held:
            sock.close()
        assert "accept failed" not in routerly.log_path.read_text(errors="replace")
    finally:
        context.__exit__(None, None, None)


# ---- request bodies -----------------------------------------------------------------------


def test_request_bodies_beyond_the_memory_budget_get_503_with_retry_after(flooded):
    routerly = flooded
    host, port = host_port(routerly)
    big = int(MAX_BODY * 0.9)
    # Two bodies declared (and so reserved) and still arriving hold ~1.8 MiB of the 2 MiB budget.
    holders = []
    for _ in range(2):
        sock = socket.create_connection((host, port))
        head = chat_request(routerly).split(b"\r\n\r\n")[0]
        head = re.sub(rb"Content-Length: \d+", f"Content-Length: {big}".encode(), head)
        sock.sendall(head + b"\r\n\r\n" + b'{"model": "')
        holders.append(sock)
    time.sleep(0.2)
    assert metric(routerly, "routerly_body_memory_bytes") == 2 * big
    body = json.dumps({"model": OPENAI_MODEL.alias, "messages": [{"role": "user", "content": "x" * 300_000}]}).encode()
    raw = build_request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {routerly.token}"})
    status, headers, answer = request(routerly, raw)
    assert status == 503, answer
    assert int(headers["retry-after"]) >= 1
    assert json.loads(answer)["error"]["type"] == "service_unavailable"
    anthropic = build_request(
        "POST", "/v1/messages",
        json.dumps({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 300_000}]}).encode(),
        {"x-api-key": routerly.token, "anthropic-version": "2023-06-01"},
    )  # fmt: skip
    status, headers, answer = request(routerly, anthropic)
    assert status == 503 and int(headers["retry-after"]) >= 1
    assert json.loads(answer)["type"] == "error"
    # The management API's bodies share the same budget (a login needs no credentials).
    login = build_request(
        "POST", "/api/auth/login", json.dumps({"email": ADMIN_EMAIL, "password": "x" * 300_000}).encode()
    )  # fmt: skip
    status, headers, answer = request(routerly, login)
    assert status == 503 and int(headers["retry-after"]) >= 1, answer
    assert json.loads(answer)["error"]["code"] == "unavailable", answer
    # The holders stall past the body timeout and give their share back.
    for sock in holders:
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 408")
        sock.close()
    assert metric(routerly, "routerly_body_memory_bytes") == 0
    status, _, answer = request(routerly, raw)
    assert status == 200, answer
    assert metric(routerly, "routerly_body_memory_refused_total") >= 3
