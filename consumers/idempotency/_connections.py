"""One database connection per thread, closed together: what the SQL stores share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

C = TypeVar("C")


class ThreadConnections(Generic[C]):
    """Lazily opens a connection per calling thread with ``connect``; ``close_all`` closes every one."""

    def __init__(self, connect: Callable[[], C], close: Callable[[C], object]) -> None:
        self._connect = connect
        self._close = close
        self._local = threading.local()
        self._all: list[C] = []
        self._lock = threading.Lock()

    def get(self, usable: Callable[[C], bool] = lambda conn: True) -> C:
        conn: C | None = getattr(self._local, "conn", None)
        if conn is None or not usable(conn):
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def current(self) -> C | None:
        return getattr(self._local, "conn", None)

    def forget(self) -> None:
        """This thread's connection is broken: the next ``get`` opens a new one."""
        self._local.conn = None

    def close_all(self) -> None:
        with self._lock:
            for conn in self._all:
                self._close(conn)
            self._all.clear()
        self._local = threading.local()
