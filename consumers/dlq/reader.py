"""Read topics to their end with a plain consumer in assign mode: no group join, no commits unless asked.

"The end" is the end-of-partition event, not ListOffsets: on some brokers (the embedded one) ListOffsets
"latest" is wrong, while the end-of-partition event and the fetch high watermark are right on all of them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from kep.consumers.dlq.errors import ReadError, TopicNotFoundError
from kep.topology.settings import KafkaSettings

log = structlog.get_logger(__name__)

TP = tuple[str, int]
BEGINNING = OFFSET_BEGINNING


class TopicReader:
    """A consumer that reads assigned partitions from given offsets up to their end, then stops.

    ``group_id`` is used only to read and commit offsets explicitly (replay progress); inspection uses a
    throw-away id and never commits. ``idle_timeout`` bounds the wait for a broker that stops answering.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        group_id: str | None = None,
        idle_timeout: float = 30.0,
        batch_size: int = 500,
    ) -> None:
        conf: dict[str, Any] = {
            **kafka.as_librdkafka_dict(),
            "group.id": group_id or f"kep-dlq-inspect-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
        self._consumer = Consumer(conf)
        self._idle_timeout = idle_timeout
        self._batch_size = batch_size
        self.ends: dict[TP, int] = {}

    # -- metadata and offsets -------------------------------------------------------------------------------
    def partitions(self, topic: str) -> list[int]:
        """Partition ids of ``topic``; ``TopicNotFoundError`` when it does not exist."""
        try:
            metadata = self._consumer.list_topics(topic, timeout=self._idle_timeout)
        except KafkaException as exc:
            raise ReadError(f"topic {topic!r}: cannot read metadata: {exc.args[0].str()}") from exc
        found = metadata.topics.get(topic)
        missing = KafkaError.UNKNOWN_TOPIC_OR_PART
        if found is None or (found.error is not None and found.error.code() == missing):
            raise TopicNotFoundError(topic)
        if found.error is not None:
            raise ReadError(f"topic {topic!r}: {found.error.str()}")
        return sorted(found.partitions)

    def committed(self, topic: str, partitions: Iterable[int]) -> dict[int, int | None]:
        """The group's committed offset per partition (``None``: nothing committed)."""
        asked = [TopicPartition(topic, p) for p in partitions]
        try:
            answer = self._consumer.committed(asked, timeout=self._idle_timeout)
        except KafkaException as exc:
            raise ReadError(f"topic {topic!r}: cannot read committed offsets: {exc.args[0].str()}") from exc
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in answer}

    def log_starts(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The first offset still in the log per partition (ListOffsets earliest: right on every broker)."""
        starts = {}
        for partition in partitions:
            try:
                low, _high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self._idle_timeout
                )
            except KafkaException as exc:
                raise ReadError(
                    f"{topic}[{partition}]: cannot read the log start: {exc.args[0].str()}"
                ) from exc
            starts[partition] = max(0, low)
        return starts

    def commit(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit ``offsets`` (partition -> next offset to read) for the group, synchronously."""
        if not offsets:
            return
        tps = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            raise ReadError(f"topic {topic!r}: commit failed: {exc.args[0].str()}") from exc

    # -- reading --------------------------------------------------------------------------------------------
    def read(
        self,
        starts: Mapping[TP, int],
        *,
        stops: Mapping[TP, int] | None = None,
        per_partition_limit: int | None = None,
    ) -> Iterator[Message]:
        """Yield every record from ``starts`` (offset or ``BEGINNING``) up to the end of each partition.

        A partition also stops before offset ``stops[tp]`` or after ``per_partition_limit`` records. The log
        end of each partition that reached its end is left in ``self.ends``.
        """
        open_tps: dict[TP, int] = {}
        for tp, start in starts.items():
            stop = (stops or {}).get(tp)
            if stop is not None and 0 <= stop <= start:
                continue
            open_tps[tp] = 0
        if not open_tps:
            return
        self._consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in open_tps])
        try:
            yield from self._drain(open_tps, stops or {}, per_partition_limit)
        finally:
            self._consumer.unassign()

    def _drain(
        self, open_tps: dict[TP, int], stops: Mapping[TP, int], limit: int | None
    ) -> Iterator[Message]:
        last_progress = time.monotonic()
        while open_tps:
            batch = self._consumer.consume(self._batch_size, timeout=0.05)
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > self._idle_timeout:
                waiting = ", ".join(f"{t}[{p}]" for t, p in sorted(open_tps))
                idle = f"{self._idle_timeout:.0f}s"
                raise ReadError(f"no answer from the broker for {idle} while reading {waiting}")
            for msg in batch:
                tp = (msg.topic() or "", msg.partition() or 0)
                if tp not in open_tps:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self.ends[tp] = msg.offset() or 0
                        del open_tps[tp]
                        continue
                    raise ReadError(f"{tp[0]}[{tp[1]}]: {error.str()}")
                offset = msg.offset() or 0
                stop = stops.get(tp)
                if stop is not None and offset >= stop:
                    del open_tps[tp]
                    continue
                yield msg
                open_tps[tp] += 1
                if (stop is not None and offset + 1 >= stop) or (limit is not None and open_tps[tp] >= limit):
                    del open_tps[tp]

    # -- lifecycle ------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
