"""Log output of the server: one line per event, as text or JSON (``[logging]`` in the configuration)."""

from __future__ import annotations

import json
import logging
import sys

from jaybird.server.config import LoggingConfig

__all__ = ["JSONFormatter", "configure_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JSONFormatter(logging.Formatter):
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
    handler.setFormatter(JSONFormatter() if config.format == "json" else logging.Formatter(TEXT_FORMAT))
    level = logging.DEBUG if verbose else _LEVELS[config.level]
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Schema migrations announce themselves at every start; only their problems are worth a line.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
