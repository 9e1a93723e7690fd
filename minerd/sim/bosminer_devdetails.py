"""BOSminer+ legacy `devdetails` (4028): one entry per hashboard with the vendor-prefixed
`Model` ("Bitmain Antminer S19j Pro"), which pyasic reads to pick the Braiins model class
(firmware-apis.md 6.1). Served by minerd.sim.cgminer for Braiins OS+ rigs only.
"""

from __future__ import annotations

from minerd.sim.rig import RigSim

__all__ = ["devdetails"]

Reply = dict[str, object]


def model_name(rig: RigSim) -> str:
    vendor = rig.model.vendor.strip()
    name = rig.model.model
    return name if not vendor or name.startswith(vendor) else f"{vendor.capitalize()} {name}"


def devdetails(rig: RigSim, now_s: float, description: str) -> Reply:
    boards = max(1, rig.model.boards)
    entries: list[Reply] = [
        {
            "DEVDETAILS": b,
            "Name": "Hashboard",
            "ID": b,
            "Driver": "bitmain",
            "Kernel": "",
            "Model": model_name(rig),
            "Device Path": "",
        }
        for b in range(boards)
    ]
    status = {
        "STATUS": "S",
        "When": int(now_s),
        "Code": 69,
        "Msg": "Device Details",
        "Description": description,
    }
    return {"STATUS": [status], "DEVDETAILS": entries, "id": 1}
