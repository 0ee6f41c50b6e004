"""Which status store the intake reads, and opening it at start-up."""

from __future__ import annotations

import os
from collections.abc import Callable

from kep.ingest.app import StatusReader
from kep.ingest.settings import DEFAULT_STORE, IngestSettings


def status_store_url(settings: IngestSettings) -> str | None:
    """``status_store``, else ``$KEP_IDEMPOTENCY_STORE`` (the workers' store), else the default; None for
    'none'."""
    url = settings.status_store or os.environ.get("KEP_IDEMPOTENCY_STORE") or DEFAULT_STORE
    return None if url.strip().lower() == "none" else url


def status_opener(settings: IngestSettings) -> Callable[[], StatusReader | None]:
    url = status_store_url(settings)

    def open_reader() -> StatusReader | None:
        if url is None:
            return None
        from kep.consumers.status import StatusView, open_status_store

        reader: StatusReader = StatusView(open_status_store(url))
        return reader

    return open_reader
