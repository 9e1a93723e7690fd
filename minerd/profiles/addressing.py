"""How the register numbers in a profile map to Modbus wire (PDU) addresses.

Vendor manuals number registers three ways, and clients disagree on whether they subtract
anything; a profile therefore writes the manual's own numbers and names the convention, and
the loader turns them into wire addresses. Nobody has to guess which numbers are meant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Numbering:
    """One numbering convention: number `first` is wire address 0."""

    name: str
    first: int
    last: int  # highest number this convention can express
    function_code: int | None  # the only function code it fits, if it implies one
    meaning: str

    def to_wire(self, number: int) -> int:
        return number - self.first

    def describe(self, number: int) -> str:
        """ "3060 (wire 3059)" for a manual number, "3059" for a wire address."""
        if self.first == 0:
            return str(number)
        return f"{number} (wire {self.to_wire(number)})"


NUMBERINGS: Final[dict[str, Numbering]] = {
    n.name: n
    for n in (
        Numbering("wire", 0, 0xFFFF, None, "the address sent in the Modbus frame, from 0"),
        Numbering("one_based", 1, 0x10000, None, "register numbers from 1: wire = number - 1"),
        Numbering("input_30001", 30001, 39999, 4, "3xxxx input registers: wire = number - 30001"),
        Numbering(
            "holding_40001", 40001, 49999, 3, "4xxxx holding registers: wire = number - 40001"
        ),
    )
}
