"""Evaluate PromQL on series scraped from real kep processes, with ``promtool test rules`` (no Prometheus server).

A scrape is turned into promtool input series as Prometheus would store it: the target's labels (``job``,
``instance``, and the ``namespace``/``cluster`` a Kubernetes scrape adds) on every sample, one value per
evaluation interval. Several scrapes of one target become consecutive values, so ``rate()`` sees the change.
"""

from __future__ import annotations

import math
import subprocess
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.metrics.observability import promtool

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def scrape(url: str) -> dict[SampleKey, float]:
    """One scrape of ``url`` (a ``/metrics`` endpoint): ``{(sample name, sorted labels): value}``; ``_created``
    samples are left out, as Prometheus leaves out the text format's created timestamps by default."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    out: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _selector(name: str, labels: Mapping[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    inner = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass
class Target:
    """One scraped process: its target labels and its scrapes, oldest first."""

    labels: dict[str, str]
    scrapes: list[dict[SampleKey, float]] = field(default_factory=list)


def input_series(targets: Sequence[Target], *, points: int) -> list[dict[str, str]]:
    """promtool ``input_series``: each sample of each target, its scrapes in order, the last one repeated up to
    ``points`` values (a sample missing from a scrape repeats its previous value)."""
    series: list[dict[str, str]] = []
    for target in targets:
        keys = sorted({key for scrape in target.scrapes for key in scrape})
        for name, labels in keys:
            values: list[float] = []
            for scrape in target.scrapes:
                if (name, labels) in scrape:
                    values.append(scrape[(name, labels)])
                elif values:
                    values.append(values[-1])
            while len(values) < points:
                values.append(values[-1])
            series.append(
                {
                    "series": _selector(name, {**dict(labels), **target.labels}),
                    "values": " ".join(_value(v) for v in values),
                }
            )
    return series


def run_rule_tests(
    tmp_path: Path, rule_files: Sequence[Path], tests: list[dict[str, Any]], *, interval: str = "1m"
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` on ``tests`` with ``rule_files``; the caller asserts on the result."""
    tool = promtool()
    assert tool is not None, "promtool not installed (`make tools`)"
    path = tmp_path / "scraped.test.yml"
    document = {
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": interval,
        "tests": tests,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=10_000))
    return subprocess.run([tool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)


def firing(alerts: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """``exp_samples`` for ``ALERTS{alertstate="firing"}``: one per expected alert (its full label set)."""
    return [
        {"labels": _selector("ALERTS", {**alert, "alertstate": "firing"}), "value": 1}
        for alert in sorted(alerts, key=lambda a: sorted(a.items()))
    ]
