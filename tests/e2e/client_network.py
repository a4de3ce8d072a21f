"""The network the real clients of test_clients.py run in: closed except loopback.

`RefusingProxy` is the `HTTP_PROXY`/`HTTPS_PROXY` every client gets: it answers every request
and every `CONNECT` with 403 and writes down the host that was asked for, so a client that tries
to reach the internet (telemetry, update checks, model catalogues) fails fast instead of leaving
the machine. Loopback is in `NO_PROXY`, so the clients reach Routerly directly.

`Recorder` is a reverse proxy between a client and Routerly that keeps every request body the
client sent (the corpus under crates/routerly-server/tests/fixtures/clients) and passes the
answer back as it arrives, streams included.
"""

from __future__ import annotations

import http.client
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class RefusingProxy:
    """A forward proxy on loopback that refuses everything; `refused` lists what was asked."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        lock = threading.Lock()
        refused = self.refused

        class Handler(_Quiet):
            def _refuse(self) -> None:
                target = self.path if self.command == "CONNECT" else urlsplit(self.path).netloc
                with lock:
                    refused.append(f"{self.command} {target or self.path}")
                body = b"routerly tests: this client may reach loopback only\n"
                self.send_response(403)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = do_CONNECT = _refuse

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Recorder:
    """A reverse proxy to `upstream` (http://127.0.0.1:P) that records each request it relays.

    `exchanges` holds, in order, `{"method", "path", "body", "status"}` with the body as the
    client sent it (parsed JSON, or the text when it is not JSON).
    """

    def __init__(self, upstream: str) -> None:
        self.exchanges: list[dict] = []
        lock = threading.Lock()
        exchanges = self.exchanges
        target = urlsplit(upstream)

        class Handler(_Quiet):
            def _relay(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in ("host", "connection", "content-length", "accept-encoding")
                }
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                try:
                    connection.request(self.command, self.path, body=body or None, headers=headers)
                    answer = connection.getresponse()
                    try:
                        parsed = json.loads(body) if body else None
                    except ValueError:
                        parsed = body.decode("utf-8", "replace")
                    with lock:
                        exchanges.append(
                            {"method": self.command, "path": self.path, "body": parsed, "status": answer.status}
                        )
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(name, value)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    while chunk := answer.read1(65536):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                finally:
                    connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _relay

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
