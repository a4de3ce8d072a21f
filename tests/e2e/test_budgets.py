"""Budgets and alerts end to end: limits set with the CLI, calls refused before any provider
is called, threshold alerts delivered for real through a loopback SMTP server (plain and
STARTTLS with a certificate from a throwaway CA trusted through the CA-file setting) and a
webhook receiver that verifies the signature, SSRF refusals, and a restart after SIGKILL in
the middle of a window.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import OPENAI_MODEL, Routerly, running_routerly, spawn_routerly

WEBHOOK_SECRET = "whsec-test-secret"


# ---- receivers ------------------------------------------------------------------------------


class MailBox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = message_from_bytes(envelope.content)
        with self.lock:
            self.messages.append(
                {
                    "authenticated": session.authenticated,
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": message["Subject"],
                    "body": message.get_payload(decode=True).decode(),
                    "tls": session.ssl is not None,
                }
            )
        return "250 Message accepted for delivery"

    def subjects(self) -> list[str]:
        with self.lock:
            return [message["subject"] for message in self.messages]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def plain_smtp() -> Iterator[tuple[int, MailBox]]:
    box = MailBox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


@pytest.fixture
def starttls_smtp(tmp_path: Path) -> Iterator[tuple[int, MailBox, Path]]:
    """An SMTP server that requires STARTTLS, with a certificate for `localhost` signed by a
    CA made for this test; the CA's PEM file is what Routerly is told to trust."""
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    ca_file = tmp_path / "smtp-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    box = MailBox()
    port = free_port()
    def authenticator(server, session, envelope, mechanism, auth_data):
        accepted = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"alerts",
            b"smtp-password",
        )
        return AuthResult(success=accepted)

    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield port, box, ca_file
    finally:
        controller.stop()


class WebhookInbox:
    """Bodies received by the webhook receiver, with whether their signature verified."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()

    def names(self) -> list[str]:
        with self.lock:
            return [event_name(event) for event in self.events]


def event_name(event: dict) -> str:
    if event["event"] == "budget.threshold":
        return f"budget.threshold:{event['threshold_percent']}"
    return event["event"]


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, WebhookInbox]]:
    inbox = WebhookInbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            signature = self.headers.get("X-Routerly-Signature", "")
            with inbox.lock:
                if hmac.compare_digest(signature, expected):
                    inbox.events.append(json.loads(body))
                else:
                    inbox.bad_signatures += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", inbox
    finally:
        server.shutdown()
        server.server_close()


# ---- helpers --------------------------------------------------------------------------------


def call(routerly: Routerly, text: str = "hello") -> httpx.Response:
    return httpx.post(
        f"{routerly.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {routerly.token}"},
        json={"model": OPENAI_MODEL.alias, "max_tokens": 5, "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )


def wait_until(what: str, check, timeout: float = 15.0, routerly: Routerly | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            log = routerly.log_tail() if routerly is not None else ""
            raise AssertionError(f"timed out waiting for {what}\n{log}")
        time.sleep(0.05)


@pytest.fixture
def fresh(mock) -> Iterator[Routerly]:
    with running_routerly(mock) as routerly:
        yield routerly


# ---- tests ----------------------------------------------------------------------------------


def test_threshold_alerts_arrive_once_by_smtp_starttls_and_signed_webhook(
    fresh: Routerly, plain_smtp, starttls_smtp, webhook_receiver
):
    routerly = fresh
    plain_port, plain_box = plain_smtp
    tls_port, tls_box, ca_file = starttls_smtp
    webhook_url, inbox = webhook_receiver

    routerly.cli("service", "configure", "--alert-thresholds", "50,80,100", "--allow-private-webhooks", "true")
    routerly.cli(
        "channel", "add", "smtp", "--host", "127.0.0.1", "--port", str(plain_port), "--tls", "none",
        "--from", "routerly@example.com", "--to", "ops@example.com,cto@example.com",
    )  # fmt: skip
    routerly.cli(
        "channel", "add", "smtp", "--host", "localhost", "--port", str(tls_port), "--tls", "starttls",
        "--ca-file", str(ca_file), "--username", "alerts", "--password", "smtp-password",
        "--from", "routerly@example.com", "--to", "ops@example.com",
    )  # fmt: skip
    hook = routerly.cli_json("channel", "add", "webhook", "--url", webhook_url, "--secret", WEBHOOK_SECRET, "--json")
    channels = routerly.cli_json("channel", "list", "--json")
    assert [channel["type"] for channel in channels] == ["smtp", "smtp", "webhook"], channels
    settings_text = (routerly.home / "config" / "settings.json").read_text()
    assert WEBHOOK_SECRET not in settings_text and "smtp-password" not in settings_text, "secrets are sealed"

    limit = routerly.cli_json(
        "limit", "add", "--scope", "project:my-app", "--metric", "calls", "--period", "daily", "--value", "4", "--json"
    )
    assert limit["level"] == "project" and limit["value"] == 4, limit

    for _ in range(2):
        assert call(routerly).status_code == 200
    wait_until("the 50 % alert on every channel", lambda: len(inbox.events) == 1 and len(plain_box.messages) == 1 and len(tls_box.messages) == 1, routerly=routerly)
    event = inbox.events[0]
    assert event["event"] == "budget.threshold" and event["threshold_percent"] == 50, event
    assert event["limit"]["id"] == limit["id"] and event["limit"]["used"] == 2 and event["limit"]["value"] == 4, event

    for _ in range(2):
        assert call(routerly).status_code == 200
    refused = call(routerly)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert int(refused.headers["retry-after"]) >= 1

    expected = ["budget.threshold:50", "budget.threshold:80", "budget.threshold:100", "budget.exhausted"]
    wait_until("every alert on the webhook", lambda: sorted(inbox.names()) == sorted(expected))
    wait_until("every alert by mail", lambda: len(plain_box.messages) == 4 and len(tls_box.messages) == 4)
    time.sleep(1.0)  # anything repeated would arrive now
    assert sorted(inbox.names()) == sorted(expected), "each alert arrives exactly once"
    assert inbox.bad_signatures == 0
    assert len(plain_box.messages) == 4 and len(tls_box.messages) == 4, (plain_box.subjects(), tls_box.subjects())
    assert all(message["tls"] for message in tls_box.messages), "the STARTTLS channel used TLS"
    assert all(message["authenticated"] for message in tls_box.messages), "and logged in"
    assert not any(message["tls"] for message in plain_box.messages)
    assert plain_box.messages[0]["to"] == ["ops@example.com", "cto@example.com"]
    assert any("budget.exhausted" in subject for subject in plain_box.subjects()), plain_box.subjects()
    assert all(limit["id"] in message["body"] for message in plain_box.messages)

    # The spend report shows the limit used up, with its reset time.
    report = routerly.cli_json("report", "usage", "--json")
    mine = [entry for entry in report if entry["id"] == limit["id"]]
    assert mine and mine[0]["used"] == 4 and mine[0]["resets_at"], report
    assert limit["id"] in routerly.cli("limit", "list")

    # A test event goes through at once.
    routerly.cli("channel", "test", hook["id"])
    wait_until("the test event", lambda: "test" in inbox.names())

    routerly.cli("limit", "remove", limit["id"])
    assert call(routerly).status_code == 200, "no limit, no refusal"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://[::1]:8080/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_private_webhook_urls_are_refused_by_default(routerly: Routerly, url: str):
    output = routerly.cli("channel", "add", "webhook", "--url", url, check=False)
    assert "Added" not in output, f"{url} was accepted: {output}"
    channels = routerly.cli_json("channel", "list", "--json")
    assert all(channel.get("url") != url for channel in channels), f"{url} was stored"


def test_a_webhook_that_became_private_is_refused_at_delivery(fresh: Routerly, webhook_receiver):
    routerly = fresh
    webhook_url, inbox = webhook_receiver
    routerly.cli("service", "configure", "--allow-private-webhooks", "true")
    hook = routerly.cli_json("channel", "add", "webhook", "--url", webhook_url, "--secret", WEBHOOK_SECRET, "--json")
    routerly.cli("channel", "test", hook["id"])
    wait_until("the allowed test event", lambda: inbox.names() == ["test"])

    routerly.cli("service", "configure", "--allow-private-webhooks", "false")
    binary = routerly.cli("channel", "test", hook["id"], check=False)
    time.sleep(0.5)
    assert inbox.names() == ["test"], f"delivered to a loopback address after it was disallowed: {binary}"


def test_a_test_alert_that_cannot_be_delivered_is_a_bad_gateway_naming_why(fresh: Routerly):
    routerly = fresh
    routerly.cli("service", "configure", "--allow-private-webhooks", "true")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    hook = routerly.cli_json(
        "channel", "add", "webhook", "--url", f"http://127.0.0.1:{closed_port}/hook", "--secret", WEBHOOK_SECRET, "--json"
    )
    key = routerly.cli_json("auth", "api-key", "create", "--name", "alerts", "--json")["key"]
    answer = httpx.post(f"{routerly.url}/api/channels/{hook['id']}/test", headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "delivery_failed" and "could not be delivered" in error["message"], error
    assert WEBHOOK_SECRET not in answer.text


def test_counters_and_sent_alerts_survive_sigkill_in_the_middle_of_a_window(fresh: Routerly, webhook_receiver):
    routerly = fresh
    webhook_url, inbox = webhook_receiver
    routerly.cli("service", "configure", "--allow-private-webhooks", "true")
    routerly.cli("channel", "add", "webhook", "--url", webhook_url, "--secret", WEBHOOK_SECRET)
    routerly.cli("limit", "add", "--scope", f"token:{routerly.token_id}", "--metric", "calls", "--rolling", "1h", "--value", "3")
    for _ in range(2):
        assert call(routerly).status_code == 200
    wait_until("the 50 % alert", lambda: inbox.names() == ["budget.threshold:50"])
    time.sleep(0.5)  # the usage writer's bound is 100 ms; alerts.json is saved before delivery

    routerly.process.kill()
    routerly.process.wait(10)
    process, url = spawn_routerly(routerly.home, routerly.env, routerly.log_path)
    routerly.process, routerly.url = process, url
    routerly.cli("auth", "login", "--url", url, "--email", "admin@example.com", "--password", "a long password")

    assert call(routerly).status_code == 200, "two of three calls were used before the kill"
    refused = call(routerly)
    assert refused.status_code == 429, refused.text  # a calls limit over an hour is a rate limit
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    expected = ["budget.threshold:50", "budget.threshold:80", "budget.threshold:100", "budget.exhausted"]
    wait_until("the later alerts", lambda: sorted(inbox.names()) == sorted(expected))
    time.sleep(0.5)
    assert sorted(inbox.names()) == sorted(expected), "the 50 % alert is not sent again after the restart"


class SilentPeer:
    """A loopback TCP server that accepts every connection, sends `greeting` at once and
    `partial_answer` once the client has written something (either may be empty), then
    reads whatever comes and never says more: a mail or web server that hangs."""

    def __init__(self, greeting: bytes = b"", partial_answer: bytes = b"") -> None:
        self.greeting, self.partial_answer = greeting, partial_answer
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.stopped = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(connection)
            threading.Thread(target=self.converse, args=(connection,), daemon=True).start()

    def converse(self, connection: socket.socket) -> None:
        try:
            connection.sendall(self.greeting)
            if connection.recv(65536):
                connection.sendall(self.partial_answer)
            while connection.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.stopped.set()
        self.server.close()
        for connection in self.connections:
            connection.close()


def test_deliveries_to_peers_that_hang_end_within_their_timeouts_and_block_no_other(fresh: Routerly, webhook_receiver):
    """SMTP is bounded by 20 s and a webhook by 10 s in all (README, Security), against peers
    that accept and never speak and peers that stall mid-conversation; meanwhile other
    deliveries (a channel test, a budget alert) go through at once."""
    routerly = fresh
    webhook_url, inbox = webhook_receiver
    routerly.cli("service", "configure", "--alert-thresholds", "50", "--allow-private-webhooks", "true")
    peers = {
        "smtp never speaks": (SilentPeer(), 20),
        "smtp stalls after its greeting": (SilentPeer(greeting=b"220 mail.example.com ESMTP\r\n"), 20),
        "webhook never answers": (SilentPeer(), 10),
        "webhook stalls mid-answer": (SilentPeer(partial_answer=b"HTTP/1.1 200 OK\r\nContent-"), 10),
    }
    try:
        channels = {}
        for name, (peer, _) in peers.items():
            if name.startswith("smtp"):
                args = ["smtp", "--host", "127.0.0.1", "--port", str(peer.port), "--tls", "none",
                        "--from", "routerly@example.com", "--to", "ops@example.com"]  # fmt: skip
            else:
                args = ["webhook", "--url", f"http://127.0.0.1:{peer.port}/hook"]
            channels[name] = routerly.cli_json("channel", "add", *args, "--json")["id"]
        working = routerly.cli_json("channel", "add", "webhook", "--url", webhook_url, "--secret", WEBHOOK_SECRET, "--json")
        key = routerly.cli_json("auth", "api-key", "create", "--name", "alerts", "--json")["key"]
        headers = {"authorization": f"Bearer {key}"}

        results: dict[str, tuple[int, str, float]] = {}

        def test_channel(name: str) -> None:
            started = time.monotonic()
            answer = httpx.post(f"{routerly.url}/api/channels/{channels[name]}/test", headers=headers, timeout=120)
            results[name] = (answer.status_code, answer.text, time.monotonic() - started)

        threads = [threading.Thread(target=test_channel, args=(name,)) for name in peers]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        # While four deliveries hang: a channel test and a budget alert to a working receiver.
        started = time.monotonic()
        answer = httpx.post(f"{routerly.url}/api/channels/{working['id']}/test", headers=headers, timeout=30)
        assert answer.status_code == 200 and time.monotonic() - started < 2, (answer.text, time.monotonic() - started)
        routerly.cli("limit", "add", "--scope", "project:my-app", "--metric", "calls", "--period", "daily", "--value", "2")
        started = time.monotonic()
        assert call(routerly).status_code == 200
        wait_until("the alert on the working channel", lambda: "budget.threshold:50" in inbox.names(), timeout=3)
        for thread in threads:
            thread.join(60)
        for name, (_, bound) in peers.items():
            status, text, elapsed = results[name]
            assert status == 502, (name, status, text)
            assert json.loads(text)["error"]["code"] == "delivery_failed", (name, text)
            # Bounded by the timeout (with room for a loaded machine), not ended early by luck.
            assert bound - 1 <= elapsed <= bound + 3, (name, elapsed)
        assert routerly.process.poll() is None
        assert httpx.get(f"{routerly.url}/health", timeout=5).status_code == 200
    finally:
        for peer, _ in peers.values():
            peer.close()
