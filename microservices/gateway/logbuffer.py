"""The gateway's log lines written in blocks: one write per batch instead of one per proxied request.

Measured on this machine at concurrency 50, the per-request access-log write cost the gateway 15-40 % of its
throughput. Each record is formatted at once (so it keeps its request id) and the lines are written when enough
have gathered, when a warning or worse arrives, or every `interval_s`, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TextIO


class BufferedStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that keeps formatted lines and writes them together."""

    def __init__(self, stream: TextIO, *, capacity: int = 256) -> None:
        super().__init__(stream)
        self.capacity = capacity
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Format now, write later (at once for warnings and errors)."""
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        if len(self._lines) >= self.capacity or record.levelno >= logging.WARNING:
            self.flush()

    def flush(self) -> None:
        """Write every kept line in one go."""
        with self.lock or contextlib.nullcontext():
            if self._lines:
                lines, self._lines = self._lines, []
                self.stream.write("\n".join(lines) + "\n")
            super().flush()


@contextlib.asynccontextmanager
async def buffered_logging(*, interval_s: float = 0.5, capacity: int = 256) -> AsyncIterator[None]:
    """While inside, the root logger's stream handlers write in blocks, flushed at least every `interval_s`."""
    root = logging.getLogger()
    originals = list(root.handlers)
    buffered: list[BufferedStreamHandler] = []
    replacements: list[logging.Handler] = []
    for handler in originals:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            replacement = BufferedStreamHandler(handler.stream, capacity=capacity)
            replacement.setFormatter(handler.formatter)
            replacement.setLevel(handler.level)
            for log_filter in handler.filters:
                replacement.addFilter(log_filter)
            buffered.append(replacement)
            replacements.append(replacement)
        else:
            replacements.append(handler)
    root.handlers[:] = replacements

    async def flush_periodically() -> None:
        while True:
            await asyncio.sleep(interval_s)
            for handler in buffered:
                handler.flush()

    task = asyncio.create_task(flush_periodically())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        root.handlers[:] = originals
        for handler in buffered:
            handler.flush()
