"""Hostile answers a test switches on per shop: a fault plan for the shop's next requests,
whatever they ask for, or for the requests of one path (its query string aside).

A plan is a list of faults, each answering `times` requests in turn (null: every request from
then on), after `skip` requests served normally. Kinds:

    429, 503            that status with `Retry-After: <retry_after>` seconds, or an HTTP date
                        that many seconds ahead (`retry_after_date`)
    timeout             no answer until the client gives up (at most 60 s)
    reset               the first half of the page, then a TCP reset (RST, no FIN)
    cp1252              the page in windows-1252; the header and its <meta> say so
    cp1252_wrong_header windows-1252 bytes; the header says utf-8, the <meta> windows-1252
    cp1252_mislabelled  windows-1252 bytes; the header and the <meta> both say utf-8
    redirect_loop       302 to the same path with `?loop=1`, which 302s back: A → B → A
    redirect_chain      302 to a new URL each time (`?hop=N+1`): a chain without end
    huge                the page, then 20 MB of padding, streamed without a Content-Length
"""

from __future__ import annotations

import math
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from email.utils import formatdate
from typing import Any

from werkzeug.wrappers import Request, Response

STATUSES = {"429": "Too Many Requests", "503": "Service Unavailable"}
# Kinds that answer instead of the page, and kinds that serve the page in a hostile form.
ANSWERS = {*STATUSES, "timeout", "redirect_loop", "redirect_chain"}
PAGES = {"reset", "cp1252", "cp1252_wrong_header", "cp1252_mislabelled", "huge"}
KINDS = ANSWERS | PAGES

HUGE_BYTES = 20 * 1024 * 1024
TIMEOUT_LIMIT = 60.0  # a "timeout" answer gives up waiting for the client after this
UTF8_META = '<meta charset="utf-8">'


@dataclass(frozen=True)
class Fault:
    kind: str
    times: int | None = 1  # requests it answers; None: all from then on
    retry_after: int = 1  # 429/503: seconds
    retry_after_date: bool = False  # 429/503: Retry-After as an HTTP date

    @classmethod
    def from_json(cls, value: Any) -> Fault:
        """A fault from the control API's JSON; ValueError with one sentence when it is wrong."""
        if not isinstance(value, dict):
            raise ValueError('each fault must be an object such as {"kind": "reset"}')
        unknown = sorted(set(value) - {"kind", "times", "retry_after", "retry_after_date"})
        if unknown:
            raise ValueError(f"unknown fault field(s) {', '.join(unknown)}")
        kind, times = str(value.get("kind")), value.get("times", 1)
        retry_after, as_date = value.get("retry_after", 1), value.get("retry_after_date", False)
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(sorted(KINDS))}")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise ValueError("fault 'times' must be a positive integer or null (always)")
        if not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError("fault 'retry_after' must be a non-negative integer")
        if not isinstance(as_date, bool):
            raise ValueError("fault 'retry_after_date' must be true or false")
        return cls(kind, times, retry_after, as_date)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultPlan:
    """The faults of the next requests, in order. Not thread-safe: ShopState locks it."""

    def __init__(self, faults: list[Fault], skip: int = 0) -> None:
        if any(fault.times is None for fault in faults[:-1]):
            raise ValueError("only the last fault of a plan may have 'times' null")
        self.faults = faults
        self.skip = skip
        self._step = 0
        self._used = 0  # requests the current step has answered

    def take(self) -> Fault | None:
        """The fault for the next request, or None: serve it normally."""
        if self.skip > 0:
            self.skip -= 1
            return None
        if self._step >= len(self.faults):
            return None
        fault = self.faults[self._step]
        self._used += 1
        if fault.times is not None and self._used >= fault.times:
            self._step, self._used = self._step + 1, 0
        return fault

    def as_json(self) -> dict[str, Any]:
        return {"skip": self.skip, "faults": [fault.as_json() for fault in self.faults]}


def answer(fault: Fault, request: Request) -> Response:
    """The answer of a fault in ANSWERS (the page is not rendered)."""
    if fault.kind in STATUSES:
        status = int(fault.kind)
        response = Response(
            f"<html><body><h1>{status} {STATUSES[fault.kind]}</h1></body></html>",
            status,
            content_type="text/html; charset=utf-8",
        )
        if fault.retry_after_date:  # rounded up: never sooner than `retry_after` seconds
            when = math.ceil(time.time() + fault.retry_after)
            response.headers["Retry-After"] = formatdate(when, usegmt=True)
        else:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response
    if fault.kind == "timeout":
        _wait_until_client_leaves(request.environ["werkzeug.socket"])
        return Response("too late\n", 504)
    if fault.kind == "redirect_loop":
        target = request.path if "loop" in request.args else f"{request.path}?loop=1"
    else:  # redirect_chain
        hop = request.args.get("hop", "0")
        target = f"{request.path}?hop={int(hop) + 1 if hop.isdigit() else 1}"
    response = Response(f"Moved to {target}\n", 302, content_type="text/html; charset=utf-8")
    response.headers["Location"] = request.host_url.rstrip("/") + target
    return response


def hostile_page(fault: Fault, page: Response, request: Request) -> Response:
    """The page of a fault in PAGES: the rendered page, served in a hostile form."""
    body = page.get_data()
    if fault.kind.startswith("cp1252"):
        text = body.decode("utf-8")
        if fault.kind != "cp1252_mislabelled":
            text = text.replace(UTF8_META, '<meta charset="windows-1252">')
        page.set_data(text.encode("cp1252", "xmlcharrefreplace"))
        charset = "windows-1252" if fault.kind == "cp1252" else "utf-8"
        page.headers["Content-Type"] = f"text/html; charset={charset}"
        return page
    if fault.kind == "reset":
        connection = request.environ["werkzeug.socket"]
        response = Response(_reset_midway(body, connection), page.status_code)
        response.headers["Content-Type"] = page.headers["Content-Type"]
        response.headers["Content-Length"] = str(len(body))
        return response
    # huge: no Content-Length, so the client only learns the size while reading it.
    return Response(_padded(body), page.status_code, content_type=page.headers["Content-Type"])


def _reset_midway(body: bytes, connection: socket.socket) -> Iterator[bytes]:
    yield body[: len(body) // 2]
    # Linger 0: the close sends a TCP RST. The server's handler releases its file objects after
    # this, and the socket closes for real then (socket.close waits for them).
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()
    raise ConnectionResetError("fault 'reset': the connection was reset mid-body")


def _padded(body: bytes) -> Iterator[bytes]:
    yield body
    chunk = b"<!--" + b" " * (64 * 1024 - 8) + b"-->\n"
    for _ in range(HUGE_BYTES // len(chunk)):
        yield chunk


def _wait_until_client_leaves(connection: socket.socket) -> None:
    deadline = time.monotonic() + TIMEOUT_LIMIT
    while time.monotonic() < deadline:
        readable, _, _ = select.select([connection], [], [], 0.2)
        if not readable:
            continue
        try:
            if not connection.recv(1, socket.MSG_PEEK):
                return  # end of stream: the client closed the connection
        except ConnectionError:
            return  # the client reset it
        time.sleep(0.2)  # data (a client should not send any): do not spin on it
