"""``python -m bench``: run every benchmark module against one broker and summarise the ratios.

Each module in ``BENCHMARKS`` is ``bench/<name>.py`` and defines ``run(ctx: BenchContext) -> list[Result]``.
To add one, write the module and append its name here. Ratios are always against a baseline measured in
the same run on the same broker, so they mean something on any machine; absolute rates only describe this one.

Options: ``--quick`` (short run), ``--only NAME`` (repeatable), ``--scenario NAME`` (repeatable: only these
scenarios of the benchmarks run, e.g. ``--only consumer --scenario sqlite``), ``--bootstrap HOST:PORT`` (an
existing broker instead of the embedded one), ``--broker kafka`` (a fresh single-node Apache Kafka, fetched from
Maven Central like the test suite's, instead of the embedded one), ``--output PATH`` (default
``bench/results/latest.json``; with ``--only`` or ``--scenario``, the other figures already there are kept),
``--check`` (exit 1 when a target is missed).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console

from bench.context import BenchContext
from bench.report import markdown_table, print_benchmark, summary_table, write_json
from bench.result import Result

#: Benchmark modules run by ``python -m bench``, in order.
BENCHMARKS: list[str] = [
    "producer",
    "consumer",
    "path",
    "stores",
    "retry",
    "lag",
    "metrics",
    "console",
    "ingest",
    "delayed",
]

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run, to check the benchmarks work")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this benchmark")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        help="run only this scenario of the benchmarks run (repeatable)",
    )
    parser.add_argument("--bootstrap", help="use this broker instead of starting the embedded one")
    parser.add_argument(
        "--broker",
        choices=["embedded", "kafka"],
        default="embedded",
        help="the broker to start: the embedded one, or Apache Kafka (needs Java)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--markdown", type=Path, help="also write the figures as a Markdown table here")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _broker(bootstrap: str | None, broker: str = "embedded") -> Iterator[tuple[str, str]]:
    if bootstrap:
        yield bootstrap, "external"
        return
    if broker == "kafka":
        from tests.support.apache_kafka import apache_kafka

        with apache_kafka() as kafka:
            yield kafka.bootstrap_servers, "kafka"
        return
    from kep.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers, "embedded"


def _run_one(name: str, ctx: BenchContext, console: Console) -> list[Result]:
    module = importlib.import_module(f"bench.{name}")
    ctx.benchmark = name
    console.print(f"[bold]running bench.{name}[/bold]{' (quick)' if ctx.quick else ''} ...")
    start = time.perf_counter()
    results: list[Result] = list(module.run(ctx))
    print_benchmark(console, name, results)
    console.print(f"bench.{name} took {time.perf_counter() - start:.1f}s\n")
    return results


def _kept(output: Path, ran: Sequence[str], fresh: Sequence[Result] = ()) -> list[Result]:
    """The figures of the benchmarks not run this time, from the previous results file: ``--only`` updates
    its benchmarks' figures and keeps the others. With ``fresh`` (a ``--scenario`` run), a figure of a benchmark
    that ran is kept too unless this run measured it again."""
    measured = {(r.benchmark, r.name) for r in fresh}
    try:
        previous = json.loads(output.read_text())
    except (OSError, ValueError):
        return []
    names = {f.name for f in dataclasses.fields(Result)}
    kept = []
    for data in previous.get("results", []):
        if data.get("benchmark") in ran and (
            not fresh or (data.get("benchmark"), data.get("name")) in measured
        ):
            continue
        fields = {k: v for k, v in data.items() if k in names}
        fields["samples"] = tuple(fields.get("samples", ()))
        kept.append(Result(**fields))
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    console = Console() if sys.stdout.isatty() else Console(width=150)
    results: list[Result] = []
    errors: dict[str, str] = {}
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with _broker(args.bootstrap, args.broker) as (bootstrap, kind):
        for name in args.only or BENCHMARKS:
            ctx = BenchContext(
                bootstrap_servers=bootstrap, quick=args.quick, scenarios=tuple(args.scenario), broker=kind
            )
            try:
                results.extend(_run_one(name, ctx, console))
            except Exception as exc:  # one broken benchmark must not hide the others
                console.print(f"[red]bench.{name} failed:[/red]\n{traceback.format_exc()}")
                errors[name] = f"{type(exc).__name__}: {exc}"
    if args.only or args.scenario:
        results = _kept(args.output, args.only or BENCHMARKS, results if args.scenario else ()) + results
        order = {name: i for i, name in enumerate(BENCHMARKS)}
        results.sort(key=lambda r: order.get(r.benchmark, len(order)))  # stable: in run order per benchmark
    console.print(summary_table(results, errors))
    meta = {
        "started": started,
        "quick": args.quick,
        "broker": kind,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    write_json(args.output, meta, results, errors)
    if args.markdown:
        args.markdown.write_text(markdown_table(results))
    console.print(f"results written to {args.output}")
    missed = [r for r in results if r.met is False]
    if errors or (args.check and missed):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
