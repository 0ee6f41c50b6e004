"""librdkafka's own log lines, through kep's logging, rate-limited.

Every client kep creates gets ``logger=`` this logger (``kep.librdkafka``), so librdkafka's lines are rendered
like every other line of the process (JSON or console, ``configure_logging``) instead of being printed raw on
standard error. A broker that cannot be reached makes librdkafka repeat the same line several times a second:
the same line (digits aside) of the same client is let through once per window, the next one that passes says
how many were held back.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

__all__ = ["LIBRDKAFKA_LOGGER", "RateLimitFilter"]

_DIGITS = re.compile(r"\d+")
_MAX_KEYS = 1000


class RateLimitFilter(logging.Filter):
    """At most one record per ``window_s`` for each (facility, client, text without digits)."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, ...], list[float]] = {}  # key -> [window start, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else (record.msg,)
        key = tuple(_DIGITS.sub("#", str(arg)) for arg in args)
        now = self._clock()
        with self._lock:
            state = self._seen.get(key)
            if state is not None and now - state[0] < self.window_s:
                state[1] += 1
                return False
            if len(self._seen) >= _MAX_KEYS:
                self._seen.clear()
            self._seen[key] = [now, 0]
        if state is not None and state[1]:
            record.msg = f"{record.msg} (and {int(state[1])} more like it in {now - state[0]:.0f}s)"
        return True


def _logger() -> logging.Logger:
    logger = logging.getLogger("kep.librdkafka")
    if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
        logger.addFilter(RateLimitFilter())
    return logger


LIBRDKAFKA_LOGGER = _logger()
