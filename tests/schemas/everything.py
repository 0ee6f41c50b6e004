"""A model using every type models can use, and random values of it, for the compiled writer and reader tests."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from kep.schemas import AvroRecord, Float32, Int32

#: Around every varint length (7, 14, 21... bits) and the ends of Avro int and long.
BOUNDARIES = sorted(
    {
        sign * (base + delta)
        for bits in (0, 6, 7, 13, 14, 20, 21, 27, 28, 34, 35, 41, 42, 48, 49, 55, 56, 62)
        for base in (2**bits,)
        for delta in (-1, 0, 1)
        for sign in (1, -1)
    }
    | {0, 2**63 - 1, -(2**63), 2**31 - 1, -(2**31)}
)


class Colour(StrEnum):
    """A colour."""

    RED = "RED"
    GREEN = "GREEN"
    BLUE = "BLUE"


class Inner(AvroRecord):
    """A nested record."""

    label: str
    when: datetime | None = None


class Everything(AvroRecord):
    """Every type a model can use."""

    text: str
    blob: bytes
    flag: bool
    count: int
    small: Int32
    ratio: float
    single: Float32
    at: datetime
    colour: Colour
    inner: Inner
    items: list[Inner]
    tags: dict[str, int]
    grid: list[list[int]]
    by_name: dict[str, Inner]
    moments: list[datetime]
    maybe_text: str | None = None
    maybe_count: int | None = 5
    maybe_inner: Inner | None = None
    maybe_colour: Colour | None = None


def random_text(rng: random.Random) -> str:
    size = rng.choice([0, 1, 63, 64, 8191, 8192, 9000])
    alphabet = "abcXYZ09-é€𝄞"
    return "".join(rng.choice(alphabet) for _ in range(min(size, 50))) * max(1, size // 50)


def random_when(rng: random.Random) -> datetime:
    millis = rng.choice([0, 1, -1, 1_704_067_200_123, 2**41 + 7, 2**45, -(2**40)])
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)


def random_inner(rng: random.Random) -> Inner:
    return Inner(label=random_text(rng), when=rng.choice([None, random_when(rng)]))


def random_everything(rng: random.Random) -> Everything:
    return Everything(
        text=random_text(rng),
        blob=bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 70, 9000]))),
        flag=rng.random() < 0.5,
        count=rng.choice(BOUNDARIES),
        small=rng.choice([b for b in BOUNDARIES if -(2**31) <= b < 2**31]),
        ratio=rng.choice([0.0, -0.0, 1.5, -1e300, math.inf, math.nan, 3, rng.random()]),
        single=rng.choice([0.0, 1.1, -2.5e38, 3.4028235e38, 3.4028236e38, 1e300, -1e300, math.nan]),
        at=random_when(rng),
        colour=rng.choice(list(Colour)),
        inner=random_inner(rng),
        items=[random_inner(rng) for _ in range(rng.choice([0, 1, 3, 70]))],
        tags={random_text(rng)[:5] + str(i): rng.choice(BOUNDARIES) for i in range(rng.choice([0, 2, 65]))},
        grid=[[rng.choice(BOUNDARIES) for _ in range(rng.choice([0, 2]))] for _ in range(rng.choice([0, 3]))],
        by_name={str(i): random_inner(rng) for i in range(rng.choice([0, 2]))},
        moments=[random_when(rng) for _ in range(rng.choice([0, 2]))],
        maybe_text=rng.choice([None, "", random_text(rng)]),
        maybe_count=rng.choice([None, 0, rng.choice(BOUNDARIES)]),
        maybe_inner=rng.choice([None, random_inner(rng)]),
        maybe_colour=rng.choice([None, *Colour]),
    )
