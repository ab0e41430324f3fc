"""A reference webhook receiver: verifies signatures, records deliveries, drops repeats.

Receivers of our webhooks should do what this one does: compute HMAC-SHA256 of the raw body
with the shared secret and compare it (in constant time) with `X-Christmas-Signature-256`,
answer 2xx only once the events are stored, and ignore an event whose `change_id` was already
processed (delivery is at least once). The tests and `bench.auditor_latency` run it on
127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from webapi.auditor.sinks import SIGNATURE_HEADER, sign


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    status: int  # what the receiver answered
    at: float  # time.time() on arrival
    change_ids: tuple[int, ...]  # of the events in a webhook delivery, in order

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


def _change_ids(body: bytes) -> tuple[int, ...]:
    try:
        payload = json.loads(body)
    except ValueError:
        return ()
    events = payload.get("events") if isinstance(payload, dict) else None
    return tuple(event["change_id"] for event in events) if isinstance(events, list) else ()


class PostServer:
    """An HTTP server on 127.0.0.1, in a thread of its own while in a ``with`` block: each POST's
    path, headers and body go to `received`, which returns the status to answer with."""

    def __init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = server.received(self.path, self.headers, body)
                with contextlib.suppress(OSError):  # the sender may have given up meanwhile
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests and the benchmark look at what was received."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def received(self, path: str, headers: HTTPMessage, body: bytes) -> int:
        raise NotImplementedError

    @property
    def port(self) -> int:
        return self._server.server_port

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class WebhookReceiver(PostServer):
    """Records every POST. `answer(path)` picks the status (default 200); a request with a bad
    signature is answered 401. With `secret=None` it checks no signature (to receive Apprise's
    unsigned `json://` notifications)."""

    def __init__(self, secret: str | None, answer: Callable[[str], int] | None = None) -> None:
        super().__init__()
        self.secret = secret
        self.answer = answer or (lambda _path: 200)
        self.requests: list[Received] = []
        self.events_delivered = 0  # events in requests answered 2xx, repeats included
        self._lock = threading.Condition()

    def received(self, path: str, headers: HTTPMessage, body: bytes) -> int:
        valid = self.secret is None or verify_signature(
            self.secret, body, headers.get(SIGNATURE_HEADER)
        )
        status = self.answer(path) if valid else 401
        received = Received(
            path, dict(headers), body, valid, status, time.time(), _change_ids(body)
        )
        with self._lock:
            self.requests.append(received)
            if 200 <= status < 300:
                self.events_delivered += len(received.change_ids)
            self._lock.notify_all()
        return status

    def delivered(self, path: str | None = None) -> list[Received]:
        """The requests answered 2xx (to `path`, if given), in arrival order."""
        with self._lock:
            return [
                r
                for r in self.requests
                if 200 <= r.status < 300 and (path is None or r.path == path)
            ]

    def change_ids(self, path: str | None = None) -> list[int]:
        """Every delivered change id in arrival order, repeats included."""
        return [change_id for r in self.delivered(path) for change_id in r.change_ids]

    def wait_for(self, condition: Callable[[WebhookReceiver], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True
