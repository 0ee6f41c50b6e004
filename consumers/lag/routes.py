"""The exporter's JSON routes: ``/groups`` (every group with its status and totals) and ``/groups/{group}``
(per partition: committed, log end, lag in messages and seconds, status). Both answer from the latest poll.

``/groups`` answers a JSON list; ``/groups/{group}`` a JSON object, or 404 for a group the last poll did not
see. Before the first poll both answer 503. The group id in the path is URL-decoded.
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


def groups_handler(latest: Callable[[], PollState]) -> Callable[[str], Response]:
    """A route handler for ``/groups`` and everything below it, reading ``latest()`` at each request."""

    def handle(raw_path: str) -> Response:
        path = urlsplit(raw_path).path
        snapshot = latest().snapshot
        if snapshot is None:
            return _json(503, {"error": "no poll has completed yet"})
        rest = path[len(PREFIX) :].strip("/")
        if not rest:
            return _json(200, [g.summary() for g in snapshot.groups])
        name = unquote(rest)
        group = snapshot.group(name)
        if group is None:
            return _json(404, {"error": f"unknown group: {name}"})
        return _json(200, {**group.as_dict(), "taken_at": snapshot.taken_at})

    return handle
