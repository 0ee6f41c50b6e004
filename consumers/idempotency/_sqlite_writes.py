"""What the writers of one SQLite database file share in this process: a write lock and a checkpointer.

SQLite lets one writer at a time into a database; a connection that finds the file locked sleeps in its busy
handler (1 ms, 2 ms, 5 ms ... up to 100 ms a time) before it looks again. Lanes and the event-status writer of
one worker each have a connection to the same file, and ``kep run`` may run several worker processes on it, so
without a lock they would take turns by sleeping. With it they queue on a lock that hands over at once: a
thread lock within the process, and an advisory file lock (``flock`` on ``<file>-kep.lock``) between the
processes of the host. The busy handler is left for writers that take neither (another program's).

In WAL mode the connection whose commit takes the log past 1,000 pages copies the log back into the database
and syncs it (a checkpoint): on a slow disk that is tens of milliseconds inside someone's write transaction,
holding every other writer up. Connections opened through ``connect`` leave that to a checkpointer thread of
this process instead (``PRAGMA wal_autocheckpoint=0`` on them, a PASSIVE checkpoint every
``CHECKPOINT_EVERY_S`` on its own connection), which never blocks writers. Durability is unchanged: commits are
in the log, synced as ``synchronous`` says, whenever they are copied back.

Writes that wait meanwhile share a transaction (``SqliteFile.write``, a group commit): a writer queues its
statements and waits for the thread lock; whoever gets it first runs everything queued by then in one write
transaction, and the others find theirs done. Lanes of one worker then cost one commit, not one each, and a
lane waits for at most the transaction under way and its own, not for every lane ahead of it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # not POSIX: the processes of a host take turns in SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

CHECKPOINT_EVERY_S = 0.5

T = TypeVar("T")
_files: dict[str, SqliteFile] = {}
_guard = threading.Lock()


class SqliteFile:
    """One database file's write lock and checkpointer; counted open by the stores that use it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = WriteLock(path + "-kep.lock")
        self._queued: list[_Write] = []  # writes waiting for the next transaction
        self._queue_lock = threading.Lock()
        self._users = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def connect(self) -> sqlite3.Connection:
        """A connection in WAL mode that leaves checkpoints to the checkpointer."""
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def write(self, conn: sqlite3.Connection, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op(conn)`` in a write transaction, committed before this returns; with it, in the same transaction,
        the writes of this file's other threads that wait meanwhile (each on the connection of the thread that
        runs them). Raises ``sqlite3.Error`` when the transaction failed, for every write in it: none of them
        was committed."""
        mine = _Write(op)
        with self._queue_lock:
            self._queued.append(mine)
        lock = self.lock
        with lock.threads:  # this process's writers queue here; the first in runs what is queued
            if not mine.done:
                if lock.held:  # inside this thread's own transaction (``transaction()``): only its own
                    with self._queue_lock:
                        self._queued.remove(mine)
                    writes = [mine]
                else:
                    with self._queue_lock:
                        writes, self._queued = self._queued, []
                try:
                    with lock:
                        _run(conn, writes)
                except BaseException as exc:  # the file lock was not taken: none of them ran
                    _failed(writes, exc, None)
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[no-any-return]

    def _checkpoints(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stop.wait(CHECKPOINT_EVERY_S):
            try:
                if conn is None:
                    conn = sqlite3.connect(
                        self.path, timeout=0, isolation_level=None, check_same_thread=False
                    )
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:  # busy, or the file is gone: the next round tries again
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                pass
            conn.close()

    def _opened(self) -> None:
        self._users += 1
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._checkpoints, name="kep-sqlite-checkpoint", daemon=True
            )
            self._thread.start()

    def _closed(self) -> threading.Thread | None:
        self._users -= 1
        if self._users > 0 or self._thread is None:
            return None
        thread, self._thread = self._thread, None
        self._stop.set()
        return thread


class _Write:
    """One caller's statements, waiting for a transaction: its result, or the error it raises."""

    __slots__ = ("op", "done", "result", "error")

    def __init__(self, op: Callable[[sqlite3.Connection], Any]) -> None:
        self.op = op
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


def _run(conn: sqlite3.Connection, writes: list[_Write]) -> None:
    """``writes`` in one transaction on ``conn``; if it fails, none of them is committed (``_failed``)."""
    failed: _Write | None = None
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                failed = write
                write.result = write.op(conn)
            failed = None
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:  # nothing was committed either way
                    pass
            raise
    except BaseException as exc:
        _failed(writes, exc, failed)
    finally:
        for write in writes:
            write.done = True


def _failed(writes: list[_Write], exc: BaseException, culprit: _Write | None) -> None:
    """Each of ``writes`` gets an error of its own: ``exc`` for the write that raised it, an
    ``sqlite3.OperationalError`` naming it for the others (the transaction itself, when no write did)."""
    for write in writes:
        write.done = True
        if write is culprit:
            write.error = exc
        else:
            what = (
                "a write in the same transaction failed" if culprit is not None else "the transaction failed"
            )
            error = sqlite3.OperationalError(f"{what}: {exc}")
            error.__cause__ = exc
            write.error = error


class WriteLock:
    """A re-entrant lock held by one thread of one process of the host at a time: a thread lock, and while
    the outermost holder has it, an exclusive ``flock`` on ``path``. The lock file is created when missing and
    never holds data; when it cannot be opened the lock is the thread lock alone."""

    def __init__(self, path: str) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        if fcntl is not None:
            try:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._fd = None

    @property
    def threads(self) -> threading.RLock:
        """The thread lock alone: held, it keeps this process's other threads out, not other processes."""
        return self._threads

    @property
    def held(self) -> bool:
        """Whether the whole lock is held (call with ``threads`` held: then it is this thread that holds it)."""
        return self._depth > 0

    def __enter__(self) -> WriteLock:
        self._threads.acquire()
        if self._depth == 0 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def open_file(path: str | Path) -> SqliteFile:
    """The shared state of the database at ``path``; pair with ``close_file``."""
    key = os.path.realpath(path)
    with _guard:
        file = _files.get(key)
        if file is None:
            file = _files[key] = SqliteFile(key)
        file._opened()
        return file


def close_file(file: SqliteFile) -> None:
    with _guard:
        thread = file._closed()
    if thread is not None:
        thread.join(5)
