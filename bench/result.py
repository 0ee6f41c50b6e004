"""What a benchmark reports: named figures, some of them ratios checked against a target."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class Result:
    """One measured figure. ``target`` (with ``better``) makes it part of the final summary.

    ``samples`` keeps every trial so a reader can see the spread behind the median in ``value``.
    """

    benchmark: str
    name: str
    value: float
    unit: str
    target: float | None = None
    better: Direction = "higher"
    samples: tuple[float, ...] = ()
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        """Whether the target is met; ``None`` without a target."""
        if self.target is None:
            return None
        return self.value >= self.target if self.better == "higher" else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["samples"] = list(self.samples)
        data["met"] = self.met
        return data
