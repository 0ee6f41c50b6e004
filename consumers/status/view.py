"""Reading status for people and HTTP clients: plain dicts, ready for JSON (``GET /events/{id}``,
``GET /batches/{id}``, ``kep status``)."""

from __future__ import annotations

from typing import Any

from kep.consumers.status.store import StatusStore

#: Dead-lettered member ids shown per group, at most.
MAX_IDS_SHOWN = 100


class StatusView:
    def __init__(self, store: StatusStore) -> None:
        self.store = store

    def event_status(self, event_id: str) -> dict[str, Any] | None:
        """``{"event_id", "groups": {group: {"state", "at_ms", "attempt", ...}}}``, or None when unknown."""
        records = self.store.events(event_id)
        if not records:
            return None
        groups = {}
        for record in records:
            fields = record.as_dict()
            del fields["event_id"], fields["group"]
            groups[record.group] = fields
        return {"event_id": event_id, "groups": groups}

    def batch_status(self, batch_id: str) -> dict[str, Any] | None:
        """``{"batch_id", "groups": {group: {"state", "total", "handled", "dead_lettered", "pending", ...}}}``."""
        progress = self.store.batches(batch_id)
        if not progress:
            return None
        groups = {}
        for p in progress:
            fields = p.as_dict()
            del fields["batch_id"], fields["group"]
            if p.dead_lettered:
                fields["dead_lettered_ids"] = self.store.dead_members(p.group, batch_id)[:MAX_IDS_SHOWN]
            groups[p.group] = fields
        return {"batch_id": batch_id, "groups": groups}

    def close(self) -> None:
        self.store.close()
