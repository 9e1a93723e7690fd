"""The energy award rules' judgement of a closed settlement interval (issue 15): under its
band when the fleet could have drawn the award, over it, or over it beyond tolerance."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from minerd.alerts.config import AlertThresholds


@dataclass(frozen=True)
class SettledInterval:
    """The last settlement interval closed, as the composition root hands it to the rules.

    limited_s: seconds in it a power limit (quota, operator cap, contract, fail-safe) held
    the site below the award's pace and its mean power: a shortfall then is the limit's,
    not the fleet's.
    """

    interval_start_s: float
    interval_s: float
    label: str  # the interval in site time for the texts: "2027-01-16 14:00-15:00 +05"
    award_id: str | None
    awarded_kwh: float | None  # None: the interval had no award (nothing to judge)
    imported_kwh: float
    limited_s: float = 0.0

    @property
    def share_pct(self) -> float | None:
        """Imported as a percentage of the award; None without an award (or a zero one)."""
        if self.awarded_kwh is None or self.awarded_kwh <= 0.0:
            return None
        return 100.0 * self.imported_kwh / self.awarded_kwh


class Band(StrEnum):
    IN = "in"
    UNDER = "under"  # below award_under_pct while no power limit held the site back
    OVER = "over"  # above award_over_pct, up to award_over_critical_pct
    OVER_CRITICAL = "over-critical"  # above award_over_critical_pct


def band(s: SettledInterval | None, th: AlertThresholds) -> Band:
    pct = None if s is None else s.share_pct
    if s is None or pct is None:
        return Band.IN
    if pct > th.award_over_critical_pct:
        return Band.OVER_CRITICAL
    if pct > th.award_over_pct:
        return Band.OVER
    if pct < th.award_under_pct and s.limited_s <= 0.0:
        return Band.UNDER
    return Band.IN
