"""Pure, synchronous decisions (imports only minerd.model; time is always passed in).

quota       which limit is in force (grid quotas, operator cap, contract, fail-safe) + timeline
planner     split a rig power budget over the fleet for the most hashrate
loop        closed-loop rig budget from the limit and the grid meter (PI, ramp, fail-safe)
compliance  per-minute and per-settlement-interval compliance records
fleet       RigStatus -> PlanRig with the safety rules; worst-case and maximum rig power
options     a rig model's operating points and their upper concave hull
"""
