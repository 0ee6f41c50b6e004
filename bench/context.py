"""What every benchmark module gets: the broker, topics on it, and the measuring helpers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bench import proc, stats
from bench.result import Direction, Result


@dataclass
class BenchContext:
    """Passed to ``run(ctx)`` of each benchmark module.

    ``quick`` asks for a short run (smoke-test sized); modules size their runs with ``scale(full, quick)``.
    """

    bootstrap_servers: str
    quick: bool = False
    benchmark: str = ""
    scenarios: tuple[str, ...] = ()  # --scenario: run only these scenarios of a benchmark (empty: all)
    broker: str = (
        "embedded"  # --broker: "embedded" (Tansu), "kafka" (Apache Kafka) or "external" (--bootstrap)
    )
    _topics: list[str] = field(default_factory=list)

    # -- broker -------------------------------------------------------------------------------------------
    def topic(self, partitions: int = 1, prefix: str = "bench", config: dict[str, str] | None = None) -> str:
        """Create a topic with a unique name and return the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        admin.create_topics([new])[name].result(timeout=30)
        self._topics.append(name)
        return name

    def kafka_conf(self, **extra: object) -> dict[str, object]:
        """A librdkafka config for this broker plus ``extra`` (keys with ``_`` for ``.``: ``linger_ms=5``)."""
        conf: dict[str, object] = {"bootstrap.servers": self.bootstrap_servers}
        conf.update({key.replace("_", "."): value for key, value in extra.items()})
        return conf

    def wants(self, scenario: str) -> bool:
        """Whether ``--scenario`` selected ``scenario`` (or selected nothing, which means every scenario)."""
        return not self.scenarios or scenario in self.scenarios

    # -- sizing -------------------------------------------------------------------------------------------
    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    # -- measuring ----------------------------------------------------------------------------------------
    timed = staticmethod(stats.timed)
    median = staticmethod(stats.median)
    rate = staticmethod(stats.rate)
    run_child = staticmethod(proc.run_child)
    peak_rss_of_pid = staticmethod(proc.peak_rss_of_pid)

    @staticmethod
    def interleaved(
        variants: Mapping[str, Callable[[], stats.Timing]], repeats: int
    ) -> dict[str, list[stats.Timing]]:
        return stats.interleaved(variants, repeats)

    def result(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        target: float | None = None,
        better: Direction = "higher",
        samples: Sequence[float] = (),
        note: str = "",
    ) -> Result:
        """A ``Result`` for the benchmark being run."""
        return Result(self.benchmark, name, value, unit, target, better, tuple(samples), note)

    def sampled(
        self, name: str, samples: Sequence[float], unit: str, *, better: Direction = "higher", note: str = ""
    ) -> Result:
        """A ``Result`` whose value is the median of ``samples``, each kept."""
        return self.result(name, stats.median(samples), unit, better=better, samples=samples, note=note)
