"""The simulated site: rigs (cgminer/LuxOS, Modbus PLC, MQTT), meters, physics and faults.

It shares nothing with the daemon but the wire and the device profiles in drivers/.
"""

from minerd.sim.config import SiteTokens
from minerd.sim.faults import METER_FAULTS, RIG_FAULTS, UnknownDevice, UnknownFault
from minerd.sim.site import SimSite
from minerd.sim.spec import RigGroupSpec, RigPlan, SiteSpec, plan_rigs

__all__ = [
    "METER_FAULTS",
    "RIG_FAULTS",
    "RigGroupSpec",
    "RigPlan",
    "SimSite",
    "SiteSpec",
    "SiteTokens",
    "UnknownDevice",
    "UnknownFault",
    "plan_rigs",
]
