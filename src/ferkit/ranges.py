"""Numeric ranges: the one way ferkit states which numbers a setting or parameter may take.

A :class:`Range` is used by the config checks (:data:`ferkit.config_checks.RULES`) and by the
method and dataset parameters (``param_constraints``, :func:`ferkit.params.check_params`), so a
rule reads and fails the same way wherever it is declared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``low <= value <= high`` (``<`` where the side is open).

    Attributes:
        low, high: the bounds; None for no bound on that side.
        low_open, high_open: leave the bound itself out.
        null: None is allowed too, and means this (``""``: allowed, needs no words); None: a
            value is required.
        each: the value is a sequence (``data.mean``) and every item must be in range.
        ascending: with ``each``, the items must also not decrease (a ``[low, high]`` pair).

    Example:
        >>> Range(0, 1, high_open=True).error(1.0)
        'must be in [0, 1), got 1.0'
        >>> Range(0, low_open=True, null="no clipping").error(-1)
        'must be > 0 or null (no clipping), got -1'
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    null: str | None = None
    each: bool = False
    ascending: bool = False

    def __str__(self) -> str:
        if self.high is None:
            text = f"{'>' if self.low_open else '>='} {self.low:g}"
        elif self.low is None:
            text = f"{'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.each:
            text = f"[low, high] with low <= high, {text} each" if self.ascending else f"{text} each"
        if self.null is not None:
            text += f" or null{f' ({self.null})' if self.null else ''}"
        return text

    def contains(self, number: float) -> bool:
        """Whether one number is within the bounds (NaN never is)."""
        above_low = self.low is None or (number > self.low if self.low_open else number >= self.low)
        below_high = self.high is None or (number < self.high if self.high_open
                                           else number <= self.high)
        return bool(above_low and below_high)

    def allows(self, value: Any) -> bool:
        """Whether ``value`` (a number, a sequence with ``each``, or None) fits.

        Raises:
            TypeError: a value of the wrong kind (a string for a number); the config loader
                reports those by type.
        """
        if value is None:
            return self.null is not None
        if not self.each:
            return self.contains(value)
        items: Sequence[float] = list(value)
        in_order = not self.ascending or all(a <= b for a, b in zip(items, items[1:]))
        return in_order and all(self.contains(x) for x in items)

    def error(self, value: Any) -> str | None:
        """Why ``value`` is out of range (``must be ...``), or None when it fits."""
        return None if self.allows(value) else f"must be {self}, got {value!r}"


__all__ = ["Range"]
