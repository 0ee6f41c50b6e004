"""The console's record of actions: who did what, when, and how it ended. A table in the console's SQLite.

Every action is a *plan* first: what an operator selected, the dry run's answer (what would go where), and,
for an edited payload, the new value. Running the plan fills in its outcome. A plan runs at most once.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

PlanStatus = Literal["planned", "running", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    id TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    who TEXT NOT NULL,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    refs TEXT NOT NULL,
    description TEXT NOT NULL,
    preview TEXT NOT NULL,
    new_value BLOB,
    new_payload TEXT,
    status TEXT NOT NULL,
    ran_ms INTEGER,
    ran_by TEXT,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS actions_time ON actions (created_ms);
"""


@dataclass(frozen=True, slots=True)
class Action:
    """A planned (dry-run) action and, once run, its outcome."""

    id: str
    created_ms: int
    who: str
    kind: str  # replay, replay-edited
    topic: str
    refs: tuple[tuple[int, int], ...]
    description: str
    preview: dict[str, Any]
    new_value: bytes | None
    new_payload: str | None
    status: PlanStatus
    ran_ms: int | None
    ran_by: str | None
    outcome: dict[str, Any] | None


class AuditLog:
    """Plans and outcomes, newest first. Thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def plan(
        self,
        *,
        who: str,
        kind: str,
        topic: str,
        refs: Sequence[tuple[int, int]],
        description: str,
        preview: dict[str, Any],
        new_value: bytes | None = None,
        new_payload: str | None = None,
    ) -> Action:
        action_id = secrets.token_urlsafe(12)
        with self._locked() as db:
            db.execute(
                "INSERT INTO actions (id, created_ms, who, kind, topic, refs, description, preview, new_value, "
                "new_payload, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned')",
                (
                    action_id,
                    _now_ms(),
                    who,
                    kind,
                    topic,
                    orjson.dumps([list(r) for r in refs]).decode(),
                    description,
                    orjson.dumps(preview).decode(),
                    new_value,
                    new_payload,
                ),
            )
        found = self.get(action_id)
        assert found is not None
        return found

    def start(self, action_id: str, who: str) -> bool:
        """Mark a planned action as running; ``False`` when it is not (already) planned: it runs once."""
        with self._locked() as db:
            cursor = db.execute(
                "UPDATE actions SET status = 'running', ran_ms = ?, ran_by = ? WHERE id = ? AND status = 'planned'",
                (_now_ms(), who, action_id),
            )
            return cursor.rowcount == 1

    def finish(self, action_id: str, *, ok: bool, outcome: dict[str, Any]) -> None:
        with self._locked() as db:
            db.execute(
                "UPDATE actions SET status = ?, outcome = ? WHERE id = ?",
                ("done" if ok else "failed", orjson.dumps(outcome).decode(), action_id),
            )

    def get(self, action_id: str) -> Action | None:
        with self._locked() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM actions WHERE id = ?", (action_id,)).fetchone()
        return _action(row) if row is not None else None

    def recent(
        self, *, limit: int = 100, topic: str | None = None, ref: tuple[int, int] | None = None
    ) -> list[Action]:
        """The newest actions (of one topic; naming one dead letter), run or not."""
        sql, args = f"SELECT {_COLUMNS} FROM actions", []
        if topic is not None:
            sql += " WHERE topic = ?"
            args.append(topic)
        sql += " ORDER BY created_ms DESC, rowid DESC"
        with self._locked() as db:
            rows = db.execute(sql, args).fetchall()
        actions = [_action(r) for r in rows]
        if ref is not None:
            actions = [a for a in actions if ref in a.refs]
        return actions[:limit]

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def close(self) -> None:
        with self._lock:
            self._db.close()


_COLUMNS = (
    "id, created_ms, who, kind, topic, refs, description, preview, new_value, new_payload, status, ran_ms, "
    "ran_by, outcome"
)


def _action(row: tuple[Any, ...]) -> Action:
    refs = tuple((int(p), int(o)) for p, o in orjson.loads(row[5]))
    return Action(
        id=row[0],
        created_ms=row[1],
        who=row[2],
        kind=row[3],
        topic=row[4],
        refs=refs,
        description=row[6],
        preview=orjson.loads(row[7]),
        new_value=row[8],
        new_payload=row[9],
        status=row[10],
        ran_ms=row[11],
        ran_by=row[12],
        outcome=orjson.loads(row[13]) if row[13] else None,
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
