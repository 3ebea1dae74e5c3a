"""The plans behind the sink's fast path for check events: per pattern of field types (which
fields are null), which positions need a length, a bound or a time parsed. Derived from
`ROW_SPECS`, so a new result field is planned like the others; used by engine.envelope."""

from __future__ import annotations

from dataclasses import dataclass

from engine.records.check_result import ROW_SPECS, Kind

# The check fast path: the types each kind of field may have there. Anything else (an int
# timing, which is valid, or a wrong type, which is not) takes the careful path above.
_NONE = type(None)
_FAST_TYPES: dict[Kind, frozenset[type]] = {
    Kind.TEXT: frozenset({str}),
    Kind.OPT_TEXT: frozenset({str, _NONE}),
    Kind.BOOL: frozenset({bool}),
    Kind.OPT_BOOL: frozenset({bool, _NONE}),
    Kind.STATUS: frozenset({int, _NONE}),
    Kind.MS: frozenset({float, _NONE}),
    Kind.OPT_TIME: frozenset({str, _NONE}),
}
ROW_NAMES = tuple(spec.name for spec in ROW_SPECS)


@dataclass(frozen=True, slots=True)
class RowPlan:
    """What is left to check in a check payload once its field types are known to be good:
    positions in the row of the strings to size (required texts first), numbers to bound and
    timestamps to parse."""

    sized: tuple[int, ...]
    limits: tuple[int, ...]
    required: int
    status: tuple[int, ...]
    ms: tuple[int, ...]
    times: tuple[int, ...]


_PLANS: dict[tuple[type, ...], RowPlan | None] = {}
_PLANS_MAX = 1024


def row_plan(types: tuple[type, ...]) -> RowPlan | None:
    """The plan for payloads whose fields have these types (None: not for the fast path).
    Cached: results of one agent have a handful of type patterns (which fields are null)."""
    if types in _PLANS:
        return _PLANS[types]
    plan: RowPlan | None = None
    if all(t in _FAST_TYPES[spec.kind] for t, spec in zip(types, ROW_SPECS, strict=True)):
        present = [
            (i, spec)
            for i, (t, spec) in enumerate(zip(types, ROW_SPECS, strict=True))
            if t is not _NONE
        ]
        required = [(i, s) for i, s in present if s.kind is Kind.TEXT]
        optional = [(i, s) for i, s in present if s.kind is Kind.OPT_TEXT]
        plan = RowPlan(
            sized=tuple(i for i, _ in required + optional),
            limits=tuple(s.limit for _, s in required + optional),
            required=len(required),
            status=tuple(i for i, s in present if s.kind is Kind.STATUS),
            ms=tuple(i for i, s in present if s.kind is Kind.MS),
            times=tuple(i for i, s in present if s.kind is Kind.OPT_TIME),
        )
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[types] = plan
    return plan
