"""The SQLite writers' lock holds across the processes of a host: a second process waits in ``flock`` (woken when
the first lets go), not in SQLite's busy handler; and it stays a re-entrant lock within a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kep.consumers.idempotency._sqlite_writes import WriteLock
from tests.support.wait import wait_until

pytestmark = pytest.mark.unit

#: Takes the lock on argv[1], says so in argv[2], and lets go when argv[3] appears.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from kep.consumers.idempotency._sqlite_writes import WriteLock
    with WriteLock(sys.argv[1]):
        Path(sys.argv[2]).touch()
        while not Path(sys.argv[3]).exists():
            time.sleep(0.01)  # sleep-ok: the holder polls for its release file
    """
)


def test_another_process_holding_the_lock_keeps_this_one_waiting_until_it_lets_go(tmp_path: Path) -> None:
    path, held, release = str(tmp_path / "db-kep.lock"), tmp_path / "held", tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path, str(held), str(release)])
    try:
        wait_until(held.exists, timeout=30, message="the other process holds the lock")
        lock = WriteLock(path)
        entered = threading.Event()

        def take() -> None:
            with lock:
                entered.set()

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        assert not entered.wait(0.3), "entered while another process held the lock"
        released_at = time.monotonic()
        release.touch()
        assert entered.wait(10)
        assert time.monotonic() - released_at < 5
        thread.join(5)
        lock.close()
    finally:
        release.touch()
        holder.wait(30)


def test_within_a_process_the_lock_is_reentrant_and_excludes_other_threads(tmp_path: Path) -> None:
    lock = WriteLock(str(tmp_path / "db-kep.lock"))
    other = threading.Event()

    def take() -> None:
        with lock:
            other.set()

    with lock, lock:  # re-entered by its holder
        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        assert not other.wait(0.2)
    assert other.wait(5)
    thread.join(5)
    lock.close()


def test_a_lock_file_that_cannot_be_made_leaves_the_thread_lock(tmp_path: Path) -> None:
    lock = WriteLock(str(tmp_path / "missing-dir" / "db-kep.lock"))
    with lock:
        pass
