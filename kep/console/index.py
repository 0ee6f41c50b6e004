"""The console's index of dead letters: one SQLite table, filled incrementally from each dead-letter topic.

Why an index: a search over 100,000 dead letters must answer its first page in well under 2 s, with filters
(time, key, exception, event id, a payload field) that Kafka cannot apply. Reading the topic per request costs
seconds; the index is read once, from where it stopped, so a refresh costs what arrived since.

* One row per dead letter: coordinates, dead-lettering time, key, event type, exception, attempts, event id,
  the decoded payload as JSON (for payload filters), and, once a replay marker names it, where it was replayed.
* ``positions`` keeps the next offset to read per partition. A refresh reads from there to the end of each
  partition with ``TopicReader`` (assign mode, no group, never commits) and stores rows in batches.
* Replay markers (``consumers.dlq.records``) are not rows: they set ``replayed_to`` on the row they name.
* Searches are SQL on indexed columns, newest first, paged with a keyset cursor (no OFFSET): page 1000 costs
  what page 1 does.

The detail view does not trust the index: it reads the record itself from the topic (see ``app.py``).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import structlog

from kep.consumers.dlq import DeadLetterRecord, TopicNotFoundError, TopicReader
from kep.consumers.dlq.reader import BEGINNING
from kep.consumers.dlq.records import marker_from, record_from
from kep.producers.headers import EVENT_TYPE, IDEMPOTENCY_KEY
from kep.schemas.codec import EventCodec
from kep.schemas.errors import KepError
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

State = Literal["all", "pending", "replayed"]
STATES: tuple[State, ...] = ("all", "pending", "replayed")
_BATCH = 2000
_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    dead_lettered_ms INTEGER NOT NULL,
    key BLOB,
    key_text TEXT,
    event_type TEXT,
    exception_type TEXT NOT NULL,
    exception_short TEXT NOT NULL,
    exception_message TEXT,
    attempt INTEGER,
    event_id TEXT,
    consumer_group TEXT,
    original TEXT,
    payload TEXT,
    decode_error TEXT,
    replayed_to TEXT,
    replayed_at_ms INTEGER,
    UNIQUE (topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS dl_time ON dead_letters (topic, dead_lettered_ms, partition, "offset");
CREATE INDEX IF NOT EXISTS dl_key ON dead_letters (topic, key_text, dead_lettered_ms);
CREATE INDEX IF NOT EXISTS dl_exc ON dead_letters (topic, exception_type, dead_lettered_ms);
CREATE INDEX IF NOT EXISTS dl_exc_short ON dead_letters (topic, exception_short, dead_lettered_ms);
CREATE INDEX IF NOT EXISTS dl_event ON dead_letters (topic, event_id);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""

_COLUMNS = (
    'topic, partition, "offset", timestamp_ms, dead_lettered_ms, key, key_text, event_type, exception_type, '
    "exception_short, exception_message, attempt, event_id, consumer_group, original, payload, decode_error"
)


class InvalidQueryError(ValueError):
    """A search filter that cannot be used; the message names the filter and the value."""


@dataclass(frozen=True, slots=True)
class Query:
    """Which dead letters a search (or a replay by filter) takes; ``None`` matches everything.

    ``exception`` is a qualified name (``builtins.TimeoutError``) or a class name (``TimeoutError``);
    ``since_ms`` is inclusive, ``until_ms`` exclusive (dead-lettering time); ``key`` and ``event_id`` are
    exact; ``field``/``value``: a payload field (``customer_id``, ``items[0].sku``) equal to ``value``;
    ``text``: the payload JSON contains it.
    """

    since_ms: int | None = None
    until_ms: int | None = None
    key: str | None = None
    exception: str | None = None
    event_id: str | None = None
    field: str | None = None
    value: str | None = None
    text: str | None = None
    state: State = "all"

    @classmethod
    def parse(cls, params: dict[str, str]) -> Query:
        """A query from form or URL parameters (blank means unset); ``InvalidQueryError`` names the bad one."""

        def get(name: str) -> str | None:
            value = (params.get(name) or "").strip()
            return value or None

        since, until = _time_ms(get("since"), "since"), _time_ms(get("until"), "until")
        if since is not None and until is not None and until <= since:
            raise InvalidQueryError(f"until {get('until')} is not after since {get('since')}")
        path, value = get("field"), params.get("value")
        if path is not None and not _FIELD_PATH.match(path):
            raise InvalidQueryError(
                f"field {path!r}: expected a payload field such as customer_id or items[0].sku"
            )
        if path is None and get("value") is not None:
            raise InvalidQueryError("value needs a field")
        state = get("state") or "all"
        if state not in STATES:
            raise InvalidQueryError(f"state {state!r}: expected one of {', '.join(STATES)}")
        return cls(
            since_ms=since,
            until_ms=until,
            key=params.get("key") or None,
            exception=get("exception"),
            event_id=get("event_id"),
            field=path,
            value=value if path is not None else None,
            text=params.get("text") or None,
            state=state,
        )

    def params(self) -> dict[str, str]:
        """The query as URL parameters (what ``parse`` reads back)."""
        values = {
            "since": _iso_minutes(self.since_ms),
            "until": _iso_minutes(self.until_ms),
            "key": self.key,
            "exception": self.exception,
            "event_id": self.event_id,
            "field": self.field,
            "value": self.value if self.field is not None else None,
            "text": self.text,
            "state": self.state if self.state != "all" else None,
        }
        return {k: v for k, v in values.items() if v is not None}

    @property
    def empty(self) -> bool:
        return not self.params()

    def where(self, topic: str) -> tuple[str, list[Any]]:
        clauses: list[str] = ["topic = ?"]
        args: list[Any] = [topic]
        if self.since_ms is not None:
            clauses.append("dead_lettered_ms >= ?")
            args.append(self.since_ms)
        if self.until_ms is not None:
            clauses.append("dead_lettered_ms < ?")
            args.append(self.until_ms)
        if self.key is not None:
            clauses.append("key_text = ?")
            args.append(self.key)
        if self.exception is not None:
            clauses.append("exception_type = ?" if "." in self.exception else "exception_short = ?")
            args.append(self.exception)
        if self.event_id is not None:
            clauses.append("event_id = ?")
            args.append(self.event_id)
        if self.field is not None:
            # instr() first: a cheap substring test that skips most rows before json_extract parses any
            clauses.append("instr(payload, ?) > 0 AND CAST(json_extract(payload, ?) AS TEXT) IS ?")
            args += [orjson.dumps(self.value or "").decode()[1:-1], "$." + self.field, self.value]
        if self.text is not None:
            clauses.append("instr(payload, ?) > 0")
            args.append(self.text)
        if self.state == "pending":
            clauses.append("replayed_to IS NULL")
        elif self.state == "replayed":
            clauses.append("replayed_to IS NOT NULL")
        return " AND ".join(clauses), args


@dataclass(frozen=True, slots=True)
class Row:
    """One indexed dead letter."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    dead_lettered_ms: int
    key: bytes | None
    key_text: str | None
    event_type: str | None
    exception_type: str
    exception_short: str
    exception_message: str | None
    attempt: int | None
    event_id: str | None
    consumer_group: str | None
    original: str | None
    payload: str | None
    decode_error: str | None
    replayed_to: str | None
    replayed_at_ms: int | None

    @property
    def ref(self) -> str:
        """``partition:offset``: how a form names this dead letter."""
        return f"{self.partition}:{self.offset}"

    @property
    def cursor(self) -> str:
        return f"{self.dead_lettered_ms}:{self.partition}:{self.offset}"

    @property
    def dead_lettered_at(self) -> str:
        return iso(self.dead_lettered_ms)


@dataclass(frozen=True, slots=True)
class Page:
    rows: tuple[Row, ...]
    total: int
    next_cursor: str | None
    took_ms: float


@dataclass(slots=True)
class TopicState:
    """What the index knows of one topic: whether it exists, how far it was read, the last problem."""

    topic: str
    exists: bool = True
    partitions: int = 0
    refreshed_at: float | None = None
    complete: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    total: int = 0
    replayed: int = 0

    @property
    def pending(self) -> int:
        return self.total - self.replayed


@dataclass(slots=True)
class _Pending:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    markers: list[tuple[str | None, int | None, str, int, int]] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)


class DeadLetterIndex:
    """The index, shared by the request threads and the background refresher.

    SQLite is used from any thread through one connection behind a lock; reading Kafka is serialised by
    another lock (one ``TopicReader``), so at most one refresh runs at a time.
    """

    def __init__(
        self,
        path: Path | str,
        kafka: KafkaSettings,
        codec: EventCodec | None,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Scans (payload filters) read the whole table: keep it in memory rather than re-read the file.
        self._db.execute("PRAGMA cache_size=-131072")  # 128 MiB
        self._db.execute("PRAGMA mmap_size=536870912")  # 512 MiB
        self._db.execute("PRAGMA temp_store=MEMORY")
        self._db.executescript(_SCHEMA)
        # The planner needs statistics to prefer the key or event-id index over walking the time index.
        self._analyzed = int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
        self._added = 0
        if self._analyzed:
            self._db.execute("ANALYZE")
        self._db_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._kafka = kafka
        self._codec = codec
        self._timeout_s = timeout_s
        self._reader: TopicReader | None = None
        self.states: dict[str, TopicState] = {}

    # -- refreshing ---------------------------------------------------------------------------------------
    def refresh(
        self, topic: str, *, budget_s: float | None = None, wait_s: float | None = None
    ) -> TopicState:
        """Read what ``topic`` got since the last refresh (at most ``budget_s`` seconds of it).

        ``wait_s``: how long to wait for a refresh already running elsewhere; after that the index answers
        as it is. Never raises for the cluster: a problem is kept in the topic's state.
        """
        state = self.states.setdefault(topic, TopicState(topic))
        acquired = self._read_lock.acquire(timeout=-1 if wait_s is None else wait_s)
        if not acquired:
            return state
        try:
            self._refresh(topic, state, budget_s)
        except TopicNotFoundError:
            state.exists, state.error, state.complete = False, None, True
        except KepError as exc:
            state.error = str(exc)
            log.warning("dead-letter index refresh failed", topic=topic, error=state.error)
            self._close_reader()
        finally:
            self._read_lock.release()
        state.refreshed_at = time.time()
        return state

    def _refresh(self, topic: str, state: TopicState, budget_s: float | None) -> None:
        if self._reader is None:
            self._reader = TopicReader(self._kafka, idle_timeout=self._timeout_s, batch_size=1000)
        reader = self._reader
        partitions = reader.partitions(topic)
        state.exists, state.partitions, state.error = True, len(partitions), None
        known = self._positions(topic)
        starts = {(topic, p): known.get(p, BEGINNING) for p in partitions}
        deadline = None if budget_s is None else time.monotonic() + budget_s
        pending = _Pending()
        state.complete = False
        for msg in reader.read(starts):
            partition, offset = msg.partition() or 0, msg.offset() or 0
            pending.positions[partition] = offset + 1
            marker = marker_from(msg)
            if marker is not None:
                pending.markers.append(
                    (
                        marker.replayed_to or "(unknown)",
                        marker.replayed_at_ms,
                        topic,
                        partition,
                        marker.target_offset,
                    )
                )
            else:
                pending.rows.append(self._row(record_from(msg)))
            if len(pending.rows) + len(pending.markers) >= _BATCH:
                self._store(topic, pending)
                pending = _Pending()
                if deadline is not None and time.monotonic() > deadline:
                    return
        self._store(topic, pending)
        state.complete = True

    def _row(self, record: DeadLetterRecord) -> tuple[Any, ...]:
        prov = record.provenance
        headers = dict(record.headers)
        event_type = _text(headers.get(EVENT_TYPE))
        payload, problem, event_id = None, None, None
        if record.value is None:
            problem = "no value (tombstone)"
        elif self._codec is None:
            problem = "no codec"
        else:
            try:
                event = self._codec.decode(record.value)
            except KepError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                payload = event.model_dump_json()
                event_type = event_type or event.avro_name
                event_id = event.event_id
        if prov is not None and prov.idempotency_key:
            event_id = prov.idempotency_key
        elif event_id is None:
            event_id = _text(headers.get(IDEMPOTENCY_KEY))
        exception = record.exception_type
        original = (
            f"{prov.original_topic}[{prov.original_partition}]@{prov.original_offset}" if prov else None
        )
        return (
            record.topic,
            record.partition,
            record.offset,
            record.timestamp_ms,
            record.dead_lettered_ms,
            record.key,
            _text(record.key),
            event_type,
            exception,
            exception.rsplit(".", 1)[-1] if not exception.startswith("(") else exception,
            prov.exception_message if prov else record.provenance_error,
            prov.attempt if prov else None,
            event_id,
            prov.consumer_group if prov else None,
            original,
            payload,
            problem,
        )

    def _store(self, topic: str, pending: _Pending) -> None:
        if not pending.positions:
            return
        with self._tx() as db:
            db.executemany(
                f"INSERT OR IGNORE INTO dead_letters ({_COLUMNS}) VALUES ({', '.join('?' * 17)})",
                pending.rows,
            )
            db.executemany(
                "UPDATE dead_letters SET replayed_to = ?, replayed_at_ms = ? WHERE topic = ? AND partition = ? "
                'AND "offset" = ?',
                pending.markers,
            )
            db.executemany(
                "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                [(topic, p, o) for p, o in pending.positions.items()],
            )
        self._added += len(pending.rows)
        if self._added >= max(1000, self._analyzed):  # the table doubled (or grew by 1000): new statistics
            with self._lock() as db:
                db.execute("ANALYZE")
                self._analyzed = int(db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
            self._added = 0

    def _positions(self, topic: str) -> dict[int, int]:
        with self._lock() as db:
            rows = db.execute("SELECT partition, next_offset FROM positions WHERE topic = ?", (topic,))
            return {int(p): int(o) for p, o in rows}

    # -- reading ------------------------------------------------------------------------------------------
    def search(self, topic: str, query: Query, *, page_size: int = 50, before: str | None = None) -> Page:
        """The newest dead letters of ``topic`` matching ``query``, ``page_size`` at a time.

        ``before``: the ``next_cursor`` of the previous page.
        """
        started = time.perf_counter()
        where, args = query.where(topic)
        page_where, page_args = where, list(args)
        if before is not None:
            page_where += ' AND (dead_lettered_ms, partition, "offset") < (?, ?, ?)'
            page_args += _cursor(before)
        with self._lock() as db:
            rows = [
                Row(*r)
                for r in db.execute(
                    f"SELECT {_COLUMNS}, replayed_to, replayed_at_ms FROM dead_letters WHERE {page_where} "
                    'ORDER BY dead_lettered_ms DESC, partition DESC, "offset" DESC LIMIT ?',
                    [*page_args, page_size + 1],
                )
            ]
            if before is None and len(rows) <= page_size:
                total = len(rows)  # the first page holds every match: no second pass to count them
            else:
                total = int(
                    db.execute(f"SELECT COUNT(*) FROM dead_letters WHERE {where}", args).fetchone()[0]
                )
        more = len(rows) > page_size
        rows = rows[:page_size]
        took = (time.perf_counter() - started) * 1000
        return Page(tuple(rows), total, rows[-1].cursor if more and rows else None, took)

    def select(self, topic: str, query: Query, *, limit: int | None = None) -> list[Row]:
        """Every pending row matching ``query`` (what a replay by filter would take), oldest first."""
        where, args = replace(query, state="pending").where(topic)
        sql = (
            f"SELECT {_COLUMNS}, replayed_to, replayed_at_ms FROM dead_letters WHERE {where} "
            'ORDER BY dead_lettered_ms, partition, "offset"'
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock() as db:
            return [Row(*r) for r in db.execute(sql, args)]

    def rows(self, topic: str, refs: Sequence[tuple[int, int]]) -> list[Row]:
        """The rows at these (partition, offset) coordinates that are indexed, oldest first."""
        found = []
        with self._lock() as db:
            for partition, offset in refs:
                row = db.execute(
                    f"SELECT {_COLUMNS}, replayed_to, replayed_at_ms FROM dead_letters "
                    'WHERE topic = ? AND partition = ? AND "offset" = ?',
                    (topic, partition, offset),
                ).fetchone()
                if row is not None:
                    found.append(Row(*row))
        return sorted(found, key=lambda r: (r.dead_lettered_ms, r.partition, r.offset))

    def row(self, topic: str, partition: int, offset: int) -> Row | None:
        rows = self.rows(topic, [(partition, offset)])
        return rows[0] if rows else None

    def counts(self, topics: Sequence[str]) -> dict[str, Counts]:
        """Dead letters and how many of them were replayed, per topic (zero for unknown topics)."""
        answer = {topic: Counts() for topic in topics}
        with self._lock() as db:
            for topic in topics:
                total, replayed = db.execute(
                    "SELECT COUNT(*), COUNT(replayed_to) FROM dead_letters WHERE topic = ?", (topic,)
                ).fetchone()
                answer[topic] = Counts(int(total), int(replayed))
        return answer

    def exceptions(self, topic: str) -> list[tuple[str, int]]:
        """Exception types seen in ``topic`` and how many dead letters each has, most first (from the index
        on exception types alone: no table rows are read)."""
        with self._lock() as db:
            rows = db.execute(
                "SELECT exception_type, COUNT(*) AS n FROM dead_letters WHERE topic = ? "
                "GROUP BY exception_type ORDER BY n DESC LIMIT 50",
                (topic,),
            )
            return [(str(name), int(n)) for name, n in rows]

    # -- plumbing -----------------------------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[sqlite3.Connection]:
        with self._db_lock:
            yield self._db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._db_lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _close_reader(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    def close(self) -> None:
        with self._read_lock:
            self._close_reader()
        with self._db_lock:
            self._db.close()


def iso(epoch_ms: int | None) -> str:
    """``2026-01-01 00:00:00.000Z``; empty for ``None``."""
    if epoch_ms is None:
        return ""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _iso_minutes(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _time_ms(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidQueryError(f"{name} {value!r}: expected a time such as 2026-01-01T12:00 (UTC)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _cursor(value: str) -> list[int]:
    parts = value.split(":")
    if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts):
        raise InvalidQueryError(f"before {value!r}: not a page cursor")
    return [int(p) for p in parts]


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
