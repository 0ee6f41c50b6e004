"""A worker's limits from its app and topology: ``None`` when no handler is limited (nothing is opened)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from kep.consumers.app import App
from kep.consumers.limits.factory import open_limit_store
from kep.consumers.limits.gate import Limits
from kep.consumers.limits.metrics import LimitMetrics
from kep.consumers.limits.store import LimitStore
from kep.topology.model import ConsumerGroupSpec, Topology


def worker_limits(
    app: App,
    group: str,
    spec: ConsumerGroupSpec | None,
    *,
    store_url: str,
    lease_s: float,
    registry: CollectorRegistry | None,
    store: LimitStore | None = None,
    topology: Topology | None = None,
) -> Limits | None:
    """The limits the app's handlers and the group's topology entry declare, kept in the store at
    ``store_url`` (the idempotency store's), or None when there are none."""
    declared = dict(spec.limits) if spec is not None else {}
    if not declared and not any(handler.limit is not None for handler in app.handlers()):
        return None
    return Limits(
        group=group,
        app=app,
        declared=declared,
        store=store if store is not None else open_limit_store(store_url, group),
        metrics=LimitMetrics(group, registry),
        lease_s=lease_s,
        carried={t.name: t.value_schema for t in topology.topics} if topology is not None else None,
    )
