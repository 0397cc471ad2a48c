"""Log output of the server: one line per event, as text or JSON (``[logging]`` in the configuration)."""

from __future__ import annotations

import json
import logging
import sys
import time

from jaybird.server.config import LoggingConfig

__all__ = ["JSONFormatter", "TextFormatter", "configure_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _SecondCachingFormatter(logging.Formatter):
    """``formatTime`` without ``strftime`` for every record: the text of the current second is kept."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._text = second, time.strftime(self.default_time_format, self.converter(second))
        return f"{self._text},{int(record.msecs):03d}"


class TextFormatter(_SecondCachingFormatter):
    """The text lines (:data:`TEXT_FORMAT`)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)


class JSONFormatter(_SecondCachingFormatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(config: LoggingConfig, *, verbose: int = 0) -> None:
    """Log to stderr at the configured level (``-v`` lowers it to debug)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if config.format == "json" else TextFormatter())
    # Neither format shows the caller, thread or process: the logging HOWTO's "Optimization" switches skip
    # collecting them for every record (the stack walk of findCaller is the dearest part of a log call).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    level = logging.DEBUG if verbose else _LEVELS[config.level]
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Schema migrations announce themselves at every start; only their problems are worth a line.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
