"""Dead-letter files: items that could not be written, kept as JSON lines to replay later."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to a dead-letter file")


def new_path(folder: Path, spider: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return folder / f"{spider}-{stamp}-{os.getpid()}.jsonl"


def append(path: Path, items: list[Mapping[str, Any]], error: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        for item in items:
            record = {"item": dict(item), "error": error}
            file.write(json.dumps(record, default=_encode, ensure_ascii=False) + "\n")
        file.flush()
        os.fsync(file.fileno())


def read(path: Path) -> Iterator[dict[str, Any]]:
    """The items of a dead-letter file (prices come back as strings; normalize them again)."""
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)["item"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}:{number} is not a dead-letter record") from None
