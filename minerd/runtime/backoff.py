"""Jittered, capped exponential backoff for devices and channels that fail."""

from __future__ import annotations

import random


def backoff_s(
    failures: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """Delay before the next try after `failures` consecutive failures (>= 1).

    Full jitter between half and the whole of the exponential step keeps a thousand rigs
    that failed together (a switch reboot) from coming back in lockstep.
    """
    if failures <= 0:
        return base_s
    step_s = min(cap_s, base_s * (2.0 ** min(failures - 1, 20)))
    r: float = (rng or random).random()
    return step_s * (0.5 + 0.5 * r)
