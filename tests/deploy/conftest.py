"""Session fixtures of the deploy tests: the chart rendered by Helm once, the compose file, the Dockerfile."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy import dockerfile
from tests.deploy.chart import REPO, HelmUnavailable, Rendered, helm_python, render_chart


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """Helm's lint report and rendered manifests for every ci/ scenario and extra case."""
    try:
        python = helm_python()
    except HelmUnavailable as exc:
        pytest.skip(f"helm-python-sdk needs Python >= 3.10 and none was found: {exc}")
    return render_chart(python, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    with open(REPO / "docker-compose.yml") as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


@pytest.fixture(scope="session")
def image() -> dockerfile.Stage:
    """The Dockerfile's final stage."""
    return dockerfile.parse(REPO / "Dockerfile")[-1]
