"""Test scales Q from a model's training scale S (Sec. 3.2, 4.1 and 4.2).

Sec. 4.1 (single test scale): "the test image size was set as follows: Q = S for fixed S,
and Q = 0.5(S_min + S_max) for jittered S in [S_min, S_max]".
Sec. 4.2 (multi-scale): "for models trained with fixed S, Q = {S - 32, S, S + 32}", and for
jittered S, "Q = {S_min, 0.5(S_min + S_max), S_max}".

A training scale is written as in the paper's tables: "256" (fixed) or "[256;512]"
(jittered); the regime names of prototxt_gen.table ("S256", "S256-512") and "256-512",
"256:512", "256,512" are accepted too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

# Sec. 4.2: the step between the test scales of a model trained at a fixed S.
MULTI_SCALE_STEP = 32


class ScaleError(ValueError):
    pass


@dataclass(frozen=True)
class TrainScale:
    """The training regime's smallest image side S: fixed (lo == hi) or jittered in [lo, hi],
    and the single test scale Q that prototxt_gen.table gives that regime."""
    lo: int
    hi: int
    test_scale: int

    @property
    def jittered(self) -> bool:
        return self.lo != self.hi

    @property
    def label(self) -> str:
        """As the paper's tables write it."""
        return f"[{self.lo};{self.hi}]" if self.jittered else str(self.lo)

    def multi_test_scales(self) -> tuple[int, ...]:
        if self.jittered:
            return (self.lo, self.test_scale, self.hi)
        return (self.lo - MULTI_SCALE_STEP, self.lo, self.lo + MULTI_SCALE_STEP)

    def default_test_scales(self, multi_scale: bool) -> tuple[int, ...]:
        return self.multi_test_scales() if multi_scale else (self.test_scale,)


def train_scale_of_regime(lo: int, hi: int) -> TrainScale:
    """The regime of prototxt_gen.table training at [lo, hi], with its single test scale.

    The table is the one source of the Sec. 3.2 rule: a regime it lists is used as is; any
    other range gets the rule the table applies to its own regimes.
    """
    from prototxt_gen import table

    if not 0 < lo <= hi:
        raise ScaleError(f"training scale [{lo};{hi}] must satisfy 0 < S_min <= S_max")
    candidates = [r for p in table.PROFILES.values() for r in table.regimes(p)]
    candidates += table.regimes(replace(table.PAPER, single_scales=(lo, lo), jitter=(lo, hi)))
    regime = next(r for r in candidates if tuple(r.train_scale) == (lo, hi))
    return TrainScale(lo, hi, regime.test_scale)


_RANGE = re.compile(r"^\s*[\[Ss]?\s*(\d+)\s*(?:[-:;,]\s*(\d+))?\s*\]?\s*$")


def parse_train_scale(text: str) -> TrainScale:
    """'256' or regime name 'S256' -> fixed S=256; '[256;512]', 'S256-512' (or 256-512,
    256:512, 256,512) -> jittered."""
    match = _RANGE.match(str(text))
    if not match:
        raise ScaleError(f"training scale {text!r}: expected S (e.g. 256) or S_min-S_max (e.g. 256-512)")
    lo = int(match.group(1))
    hi = int(match.group(2)) if match.group(2) else lo
    return train_scale_of_regime(lo, hi)


def regime_in_name(name: str) -> TrainScale | None:
    """The training scale in a snapshot name such as vgg_D_S256-512_iter_370000.caffemodel."""
    match = re.search(r"(?:^|_)S(\d+(?:-\d+)?)(?:_|\.|$)", name)
    return parse_train_scale(match.group(1)) if match else None


def parse_test_scales(text: str | list[str]) -> tuple[int, ...]:
    """'256 384 512' (or a list of such words; commas allowed) -> (256, 384, 512)."""
    words = text.replace(",", " ").split() if isinstance(text, str) else \
        [w for item in text for w in str(item).replace(",", " ").split()]
    try:
        scales = tuple(int(w) for w in words)
    except ValueError:
        raise ScaleError(f"test scales {text!r}: expected integers such as '256 384 512'") from None
    if not scales or any(q <= 0 for q in scales):
        raise ScaleError(f"test scales {text!r}: expected one or more positive integers")
    if len(set(scales)) != len(scales):
        raise ScaleError(f"test scales {text!r}: a scale is repeated")
    return scales


def format_test_scales(scales: tuple[int, ...] | list[int]) -> str:
    """As the paper's tables write them: 384, or {256,384,512}."""
    scales = sorted(scales)
    return str(scales[0]) if len(scales) == 1 else "{" + ",".join(map(str, scales)) + "}"
