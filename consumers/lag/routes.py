"""The exporter's JSON routes: ``/groups`` (every group with its status and totals) and ``/groups/{group}``
(per partition: committed, log end, lag in messages and seconds, status). Both answer from the latest poll.

``/groups`` answers a JSON list; ``/groups/{group}`` a JSON object. Before the first poll both answer 503
"not polled yet". A group the last poll did not see answers 503 "not polled yet" too while ``pending(group)``
says a poll that could see it is still to come (the exporter then polls at once), and 404 after that. The group
id in the path is URL-decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from kep.consumers.lag.collector import PollState

JSON = "application/json"
Response = tuple[int, bytes, str]
PREFIX = "/groups"


def _json(status: int, body: Any) -> Response:
    return status, orjson.dumps(body), JSON


def groups_handler(
    latest: Callable[[], PollState], pending: Callable[[str], bool] | None = None
) -> Callable[[str], Response]:
    """A route handler for ``/groups`` and everything below it, reading ``latest()`` at each request."""

    def handle(raw_path: str) -> Response:
        path = urlsplit(raw_path).path
        snapshot = latest().snapshot
        if snapshot is None:
            return _json(503, {"error": "not polled yet: no poll has completed"})
        rest = path[len(PREFIX) :].strip("/")
        if not rest:
            return _json(200, [g.summary() for g in snapshot.groups])
        name = unquote(rest)
        group = snapshot.group(name)
        if group is None:
            if pending is not None and pending(name):
                return _json(
                    503, {"error": f"not polled yet: group {name} was not seen by a poll yet; polling now"}
                )
            return _json(404, {"error": f"unknown group: {name}"})
        return _json(200, {**group.as_dict(), "taken_at": snapshot.taken_at})

    return handle
