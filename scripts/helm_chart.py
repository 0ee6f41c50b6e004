"""Lint the kep Helm chart and render its scenarios with Helm's own Go SDK, offline (no cluster, no binary).

Runs in .kep/helm-venv (``scripts/helm-venv.sh`` creates it), where ``helm_python`` (PyPI helm-python-sdk)
binds Helm v4's Go SDK: the same chart loader, template engine, values.schema.json validation and linter as
the ``helm`` command. Standard library otherwise.

For each ``ci/*-values.yaml`` scenario (case = file name without ``-values.yaml``; ``default`` holds no
values) and each ``--case NAME=FILE``, it runs ``helm lint --strict`` with those values and
renders the templates as ``helm template`` does (hooks included), then writes to OUT. With ``--base FILE``
every case's values are laid over FILE's first (maps merged key by key, anything else replaced, as Helm
merges ``-f base -f case``): the chart has no topology or handlers of its own, so its scenarios run over a
service's values, the shop example's ``examples/shop/helm-values.yaml``.

  NAME.yaml       the manifests, each document preceded by ``# Source: <template>``
  NAME.NOTES.txt  the rendered NOTES.txt
  report.json     {"helm": VERSION, "cases": {NAME: {"values_file", "lint", "error"}}}

``lint`` lists Helm's findings ({"severity": 1 info | 2 warning | 3 error, "path", "error"}); ``error`` is the
render failure (a ``fail`` in a template, a schema violation) or null.

  .kep/helm-venv/bin/python scripts/helm_chart.py helm/kep build/helm [--base FILE] [--case NAME=FILE ...]
      [--check]

Exit status: 0; 1 with --check when a ci scenario has a lint warning or error or does not
render; 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import helm_python as helm

WARNING = 2


def _load_values(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    values: dict[str, Any] = helm.values_from_yaml(path.read_text())
    return values


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``: maps merge key by key, any other value replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _manifests(rendered: dict[str, str]) -> tuple[str, str]:
    """The manifests as one multi-document YAML stream, and the NOTES.txt text."""
    notes = ""
    parts: list[str] = []
    for source in sorted(rendered):
        text = rendered[source]
        if source.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in text.split("\n---"):
            if doc.strip() and any(
                line.strip() and not line.lstrip().startswith("#") for line in doc.splitlines()
            ):
                parts.append(f"---\n# Source: {source}\n{doc.strip(chr(10))}\n")
    return "".join(parts), notes


def run_case(
    chart: Path, name: str, values_file: Path | None, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "values_file": str(values_file) if values_file else None,
        "lint": [],
        "error": None,
    }
    try:
        values = _merged(_load_values(args.base), _load_values(values_file))
    except helm.HelmError as exc:
        result["error"] = f"values: {exc}"
        return result
    report = helm.lint(
        str(chart), values, strict=True, namespace=args.namespace, kube_version=args.kube_version
    )
    result["lint"] = report.get("messages") or []
    try:
        rendered = helm.Chart.load(str(chart)).render(
            values, name=args.release, namespace=args.namespace, is_install=True
        )
    except helm.HelmError as exc:
        result["error"] = str(exc).strip()
        return result
    manifests, notes = _manifests(rendered)
    (out / f"{name}.yaml").write_text(manifests)
    (out / f"{name}.NOTES.txt").write_text(notes)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chart", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--case", action="append", default=[], metavar="NAME=FILE", help="extra values file")
    parser.add_argument("--base", type=Path, help="values every case is laid over (a service's values)")
    parser.add_argument("--release", default="kep")
    parser.add_argument("--namespace", default="kep")
    parser.add_argument("--kube-version", default="v1.30.0")
    parser.add_argument("--check", action="store_true", help="exit 1 on findings in the ci/ scenarios")
    args = parser.parse_args(argv)

    cases: dict[str, Path | None] = {}
    for path in sorted((args.chart / "ci").glob("*-values.yaml")):
        cases[path.name.removesuffix("-values.yaml")] = path
    checked = set(cases)
    for spec in args.case:
        name, sep, file = spec.partition("=")
        if not sep or not name or name in cases:
            parser.error(f"--case {spec!r}: expected a new NAME=FILE")
        cases[name] = Path(file)

    args.out.mkdir(parents=True, exist_ok=True)
    helm.disable_logging()
    results = {name: run_case(args.chart, name, values, args.out, args) for name, values in cases.items()}
    (args.out / "report.json").write_text(
        json.dumps({"helm": helm.helm_sdk_version(), "cases": results}, indent=2) + "\n"
    )

    failed = 0
    for name, result in results.items():
        findings = [m for m in result["lint"] if m["severity"] >= WARNING]
        status = (
            "render failed" if result["error"] else f"{len(findings)} lint findings" if findings else "ok"
        )
        print(f"{name:24} {status}")
        for finding in findings:
            print(f"    {finding['path']}: {finding['error'].strip()}")
        if result["error"]:
            print(f"    {result['error']}")
        if name in checked and (findings or result["error"]):
            failed += 1
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
