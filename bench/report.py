"""Printing benchmark results as tables and writing them as JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.result import Result


def _fmt(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _target(result: Result) -> str:
    if result.target is None:
        return ""
    sign = ">=" if result.better == "higher" else "<="
    return f"{sign} {_fmt(result.target)}"


def _verdict(result: Result) -> str:
    if result.met is None:
        return ""
    return "[green]met[/green]" if result.met else "[red]missed[/red]"


def benchmark_table(name: str, results: Sequence[Result]) -> Table:
    table = Table(title=f"bench: {name}", title_justify="left")
    for column, justify in (
        ("figure", "left"),
        ("median", "right"),
        ("unit", "left"),
        ("trials", "right"),
        ("target", "right"),
        ("", "left"),
        ("note", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in results:
        trials = " / ".join(_fmt(s) for s in r.samples)
        table.add_row(r.name, _fmt(r.value), r.unit, trials, _target(r), _verdict(r), r.note)
    return table


def summary_table(results: Sequence[Result], errors: dict[str, str]) -> Table:
    table = Table(title="bench: summary of targets", title_justify="left")
    for column in ("benchmark", "figure", "value", "target", ""):
        table.add_column(column)
    for r in results:
        if r.target is not None:
            table.add_row(r.benchmark, r.name, f"{_fmt(r.value)} {r.unit}", _target(r), _verdict(r))
    for name, error in errors.items():
        table.add_row(name, "[red]failed to run[/red]", error, "", "[red]error[/red]")
    return table


def print_benchmark(console: Console, name: str, results: Sequence[Result]) -> None:
    console.print(benchmark_table(name, results))


def write_json(path: Path, meta: dict[str, Any], results: Sequence[Result], errors: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**meta, "results": [r.as_dict() for r in results], "errors": errors}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


def markdown_table(results: Sequence[Result]) -> str:
    """Every figure that has a target, plus the absolute rates, as a Markdown table (for the README)."""
    lines = ["| benchmark | figure | value | target | |", "| --- | --- | --- | --- | --- |"]
    for r in results:
        if r.target is None and r.unit not in ("events/s", "ms", "µs/event", "MiB"):
            continue
        verdict = "" if r.met is None else ("met" if r.met else "missed")
        lines.append(f"| {r.benchmark} | {r.name} | {_fmt(r.value)} {r.unit} | {_target(r)} | {verdict} |")
    return "\n".join(lines) + "\n"
