"""`enclavefl --log-level info --log-file node.log --log-json node run ...`: where the library's log lines go.

    configure_logging(level="info", file=Path("node.log"), json_lines=True)   # one JSON object a line, appended

Without any of the three options nothing is configured and each command keeps its own default (the node prints its
rounds, attests, joins and refusals at INFO on stderr). With any of them the root logger gets one handler: the file
(appended) or stderr, plain `time level logger: message` lines or one JSON object a line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

LEVELS: Final = ("debug", "info", "warning", "error")


class JsonLineFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def configure_logging(*, level: str | None, file: Path | None, json_lines: bool) -> bool:
    """Give the root logger one handler as asked; False (nothing changed) when no option was given.

    OSError when `file` cannot be opened (the caller says so in one line)."""
    if level is None and file is None and not json_lines:
        return False
    chosen = (level or "info").lower()
    if chosen not in LEVELS:
        raise ValueError(f"--log-level {level!r}: choose one of {', '.join(LEVELS)}")
    handler: logging.Handler = (
        logging.FileHandler(file, mode="a", encoding="utf-8") if file is not None else logging.StreamHandler()
    )
    handler.setFormatter(
        JsonLineFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)  # a command's later logging.basicConfig sees a handler and changes nothing
    root.setLevel(chosen.upper())
    return True
