"""The samples of a metrics event, held as one shared `Shape` plus the values.

An agent sends the same series in the same order tick after tick; only the values change. So
the sink keeps the layout (metrics, canonical labels, units) once per distinct shape and every
event of that shape points at the same `Shape` object: validating labels, canonicalising them
and looking up their series ids is done once per shape instead of once per sample, and the
store can key its cached series-id vectors on the object itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

import orjson

from engine.records.check_result import NAME_MAX

UNIT_MAX = 40
_NUMBER_TYPES = frozenset({float, int})
_SORT = orjson.OPT_SORT_KEYS


class BadSample(Exception):
    """A sample that cannot be accepted; the message is the short dead-letter reason."""


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """The layout of a metrics event: per sample its metric, canonical labels JSON (sorted
    keys) and unit. Compared and hashed by identity: shapes from the decoder's cache are
    shared, so a dict keyed on one costs a pointer hash, not 63 strings."""

    metrics: tuple[str, ...]
    labels: tuple[str, ...]
    units: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.metrics)

    def rows(self, values: tuple[float, ...]) -> list[tuple[str, str, float, str]]:
        """(metric, labels JSON, value, unit) per sample: the row view, for the slow paths."""
        return list(zip(self.metrics, self.labels, values, self.units, strict=True))


EMPTY = Shape((), (), ())

# The decoder's cache: the exact JSON of (metrics, labels, units) -> its validated Shape.
_SHAPES: dict[bytes, Shape] = {}
_SHAPES_MAX = 2048


def shape_of(samples: list[tuple[str, str, float, str]]) -> tuple[Shape, tuple[float, ...]]:
    """A shape and values from (metric, canonical labels JSON, value, unit) rows, unchecked
    (for events built in code, such as tests); not shared with the decoder's cache."""
    if not samples:
        return EMPTY, ()
    metrics, labels, values, units = zip(*samples, strict=True)
    return Shape(metrics, labels, units), values


def parse_samples(items: list[Any], nul_free: bool) -> tuple[Shape, tuple[float, ...]]:
    """The validated shape and values of a payload's `samples` list, or `BadSample`.

    `nul_free` says the raw message has no `\\u0000` escape, so no string can hold NUL."""
    if nul_free and (fast := samples_at_once(items)) is not None:
        return fast
    return _samples_one_by_one(items)


def _samples_one_by_one(items: list[Any]) -> tuple[Shape, tuple[float, ...]]:
    """The careful loop: one sample at a time, so the first problem is named."""
    out: list[tuple[str, str, float, str]] = []
    for item in items:
        if not isinstance(item, list) or len(item) != 4:
            raise BadSample("wrong_shape: a sample must be [metric, labels, value, unit]")
        metric, labels, value, unit = item
        if not isinstance(metric, str) or not metric or len(metric) > NAME_MAX:
            raise BadSample("wrong_type: sample metric must be a non-empty string")
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise BadSample("wrong_type: sample labels must map strings to strings")
        if "\x00" in metric or any("\x00" in k or "\x00" in v for k, v in labels.items()):
            raise BadSample("nul_character: sample metric or labels")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadSample("wrong_type: sample value must be a number")
        if not math.isfinite(value):
            raise BadSample("non_finite: sample value")
        if not isinstance(unit, str) or len(unit) > UNIT_MAX:
            raise BadSample("wrong_type: sample unit must be a short string")
        out.append((metric, orjson.dumps(labels, option=_SORT).decode(), value, unit))
    return shape_of(out)


def samples_at_once(items: list[Any]) -> tuple[Shape, tuple[float, ...]] | None:
    """The same checks as `_samples_one_by_one`, column by column in C (`map`, `zip`, `set`),
    for the sink's hot path: several times faster on real metrics events. None if anything is
    off; the loop then finds the problem and names it. Callers rule out NUL characters."""
    if not items:
        return EMPTY, ()
    if set(map(type, items)) != {list} or set(map(len, items)) != {4}:
        return None
    metrics, labels, values, units = zip(*items, strict=True)
    if not set(map(type, values)) <= _NUMBER_TYPES or not all(map(math.isfinite, values)):
        return None
    shape = _shared_shape(metrics, labels, units)
    return None if shape is None else (shape, values)


def _shared_shape(
    metrics: tuple[Any, ...], labels: tuple[Any, ...], units: tuple[Any, ...]
) -> Shape | None:
    """The cached `Shape` of these columns, or None if a metric, labels object or unit is not
    valid.

    The key is the exact JSON of the metrics, labels and units (one orjson call per event
    instead of one per sample), and a hit means they were all checked before. Bounded: the
    cache is emptied when full, and a miss only costs the checks and per-sample calls.
    """
    try:
        key = orjson.dumps((metrics, labels, units))
    except TypeError:
        return None
    found = _SHAPES.get(key)
    if found is not None:
        return found
    if set(map(type, metrics)) != {str} or set(map(type, units)) != {str}:
        return None
    if set(map(type, labels)) != {dict}:
        return None
    if not set(map(type, chain.from_iterable(map(dict.values, labels)))) <= {str}:
        return None  # (JSON object keys are always strings)
    lengths = list(map(len, metrics))
    if min(lengths) < 1 or max(lengths) > NAME_MAX or max(map(len, units)) > UNIT_MAX:
        return None
    canonical = tuple(map(bytes.decode, map(orjson.dumps, labels, repeat(None), repeat(_SORT))))
    if len(_SHAPES) >= _SHAPES_MAX:
        _SHAPES.clear()
    found = _SHAPES[key] = Shape(metrics, canonical, units)
    return found
