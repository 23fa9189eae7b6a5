"""Logging for `python -m bot`: one line format, and no secret value in any line."""

from __future__ import annotations

import logging

from orchestrator import Redactor

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_TRACEBACKS = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's formatted message, exception text and stack."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed call: the handler reports it, with no values shown
        record.msg, record.args = self._redactor.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        # Formatters print a cached exc_text rather than format exc_info again.
        record.exc_text = self._redactor.redact(record.exc_text)
        record.stack_info = self._redactor.redact(record.stack_info)
        return True


def setup_logging() -> None:
    """Log INFO and up to stderr, one line per record."""
    logging.basicConfig(level=logging.INFO, format=_FORMAT)


def install_redaction(redactor: Redactor) -> None:
    """Every handler of the root logger masks secrets.

    On the handlers, not a logger: a logger's filters miss records its children propagate."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(redactor))
