"""Recurring events: the topology's ``schedules:`` fired exactly once per firing however many replicas run.

Every replica runs a ``Scheduler``; the one that owns partition 0 of the state topic (a consumer group) leads
and publishes each firing with a deterministic id (``firing_id``), recording it in the compacted state topic
once acknowledged. See docs/schedules.md.
"""

from kep.consumers.schedules.firings import Due, due_firings, firing_id, next_firing, trigger_id
from kep.consumers.schedules.metrics import SchedulerMetrics
from kep.consumers.schedules.scheduler import Scheduler
from kep.consumers.schedules.state import (
    ScheduleState,
    StateView,
    paused_record,
    read_state,
    require_state_topic,
)

__all__ = [
    "Due",
    "ScheduleState",
    "Scheduler",
    "SchedulerMetrics",
    "StateView",
    "due_firings",
    "firing_id",
    "next_firing",
    "paused_record",
    "read_state",
    "require_state_topic",
    "trigger_id",
]
