"""The one cancellation token: checked without a lock on the hot path, waited on with a timeout elsewhere."""

from __future__ import annotations

import threading


class CancelToken:
    """Set once, never cleared. ``cancelled`` is a plain attribute (read per message without a lock);
    ``wait(timeout)`` sleeps until the timeout or the cancellation, whichever comes first."""

    __slots__ = ("cancelled", "_event")

    def __init__(self) -> None:
        self.cancelled = False
        self._event = threading.Event()

    def cancel(self) -> None:
        self.cancelled = True
        self._event.set()

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds; True when cancelled (now or before)."""
        if self.cancelled:
            return True
        return self._event.wait(timeout)

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"
