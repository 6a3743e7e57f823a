"""How a format contrast is read: the way the declared primary contrast reads.

Why: the MRMC tables list each pair once in one orientation ("full - seg112"); a reader comparing
them with the primary endpoint ("seg112 - full") must not have to flip signs in their head. Pure
Python, so the Snakefile's imports (the checklist) stay light.
"""

from __future__ import annotations


def orient_contrast(contrast: str, primary: str) -> tuple[str, int]:
    """``contrast`` ("x - y") read the way the primary contrast reads ("a - b"): a first and b last
    where they occur, otherwise as given; returns the contrast and the sign (+1 or -1) to apply."""
    a, b = (s.strip() for s in primary.split(" - "))
    x, y = (s.strip() for s in contrast.split(" - "))
    rank = {a: 0, b: 2}
    flip = rank.get(x, 1) > rank.get(y, 1)
    return (f"{y} - {x}", -1) if flip else (contrast, 1)


def turn(contrast: str, estimate: float, ci_low: float, ci_high: float, primary: str) -> tuple[str, float, float, float]:
    """A contrast's estimate and CI read the primary's way: negated, and the CI's ends swapped,
    when :func:`orient_contrast` turns it round."""
    contrast, sign = orient_contrast(contrast, primary)
    if sign > 0:
        return contrast, estimate, ci_low, ci_high
    return contrast, -estimate, -ci_high, -ci_low
