"""JSON for requests in the shared queue (scrapy-redis's ``SCHEDULER_SERIALIZER`` interface).

scrapy-redis pickles by default; a pickle read from a shared Redis runs whatever code its writer
chose, so the queue holds JSON instead. ``Request.to_dict()`` has bytes (body, headers) and
dicts keyed by bytes (headers); those are tagged:

    b"..."                  → {"$b": "<base64>"}
    {b"k": v} or {"$x": v}  → {"$d": [[key, value], ...]}

Everything else must be plain JSON — as ``meta["render"]`` of the Selenium middleware is — or
``dumps`` raises TypeError naming the value.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: _encode(item) for key, item in value.items()}
        return {"$d": [[_encode(key), _encode(item)] for key, item in value.items()]}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot put {type(value).__name__} {value!r} in the shared queue as JSON")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b"}:
            return base64.b64decode(value["$b"])
        if set(value) == {"$d"}:
            return {_decode(key): _decode(item) for key, item in value["$d"]}
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def dumps(obj: Any) -> bytes:
    return json.dumps(_encode(obj), separators=(",", ":"), allow_nan=False).encode()


def loads(data: bytes | str) -> Any:
    return _decode(json.loads(data))
