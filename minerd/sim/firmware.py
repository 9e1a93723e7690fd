"""Report bodies (version, summary, stats, devs) laid out as each emulated firmware sends them.

Three layouts, chosen per rig by its firmware family (`family`; Vnish is "stock" with a
`Type` suffix):
- "stock": Bitmain stock cgminer 1.0.0 on S19-class rigs (S19j Pro, S21) served over the plain
  cgminer protocol: `GHS` numbers in GH/s, 4 chain slots for 3 boards (the 4th empty),
  `rate_unit "GH"`, `temp_pcbN`/`temp_chipN`/`temp_picN` strings, numeric `tempN`/`temp2_N`
  only for fitted chains, `Type` without a "Bitmain " prefix; no power over 4028;
- "luxos": LUXminer: the same slots with `chain_rate4 "0"` and numeric temperatures, GHS
  windows 5s..24h, `version` with `LUXminer` and API 3.7, per-board `devs`;
- "btminer": Whatsminer API v2: `MHS` keys in MH/s, power, chip temperature and fans in
  `summary`, the `stats` data in STATS[0].
The layouts are pinned by tests/fixtures/firmware (reference: firmware-apis.md); the values
come from the rig's physics. Pure functions of a RigSim, its view and the time.
"""

from __future__ import annotations

import zlib

from minerd.model import RigProtocol
from minerd.sim.luxos import DESCRIPTION as LUX_DESCRIPTION
from minerd.sim.luxos import LUXMINER_VERSION as LUX_VERSION
from minerd.sim.rig import RigSim, RigView

Reply = dict[str, object]

STOCK, LUXOS, BTMINER, BOSMINER = "stock", "luxos", "btminer", "bosminer"
BOSMINER_VERSION = "bosminer-plus-am2 0.2.0-sim"  # Braiins OS+ legacy API (firmware-apis.md 6)
STOCK_COMPILE_TIME = "Tue May 18 15:01:39 CST 2021"
CHIPS_PER_BOARD = 126
FREQ_MHZ = 525
SLEEP_MODE = 254  # stock `Mode` while asleep


VNISH_VERSION = "1.2.6"


def family(rig: RigSim) -> str:
    """The 4028 layout: Vnish keeps the stock layout (its Type carries a suffix); Braiins OS+
    answers its legacy BOSminer+ API (MHS keys, no Type, per-board devs)."""
    if rig.plan.protocol is RigProtocol.LUXOS:
        return LUXOS
    if rig.plan.protocol is RigProtocol.BRAIINS:
        return BOSMINER
    if rig.plan.protocol is RigProtocol.WHATSMINER or rig.model.vendor.lower() == "microbt":
        return BTMINER
    return STOCK


def description(rig: RigSim) -> str:
    """STATUS Description: what each firmware names itself."""
    fam = family(rig)
    if fam == LUXOS:
        return LUX_DESCRIPTION
    if fam == BTMINER:
        return "btminer"
    if fam == BOSMINER:
        return f"BOSminer {BOSMINER_VERSION}"
    return "cgminer 1.0.0"


def model_type(rig: RigSim) -> str:
    """The `Type` string: "Antminer S19j Pro", never with the vendor's name in front; Vnish
    appends "(vnish x.y.z)" (firmware-apis.md 1.4, 4)."""
    if rig.plan.protocol is RigProtocol.VNISH:
        return f"{rig.model.model} (vnish {VNISH_VERSION})"
    return rig.model.model


def _vnish(rig: RigSim) -> bool:
    return rig.plan.protocol is RigProtocol.VNISH


def _miner(rig: RigSim) -> str:
    return "uart_trans.1.3" if _reports_chain_power(rig) else "49.0.1.3"


def _reports_chain_power(rig: RigSim) -> bool:
    # 2024 S21 firmware: `chain_power` in stats and real hashrate in devs
    return rig.model.model.startswith("Antminer S21")


def _slots(rig: RigSim) -> int:
    # S19-class control boards have 4 chain slots whatever number of boards is fitted
    return max(4, rig.model.boards)


def _rig_number(rig: RigSim) -> int:
    """A stable number per rig for serials (hash() differs between processes)."""
    return zlib.crc32(rig.rig_id.encode())


def _elapsed(v: RigView) -> int:
    return int(v.uptime_s)


# ---------------------------------------------------------------- version


def version(rig: RigSim) -> Reply:
    fam = family(rig)
    if fam == LUXOS:
        return {
            "LUXminer": LUX_VERSION,
            "Miner": LUX_VERSION,
            "CompileTime": "Tue Apr 8 22:03:05 UTC 2025",
            "API": "3.7",
            "Type": model_type(rig),
        }
    if fam == BOSMINER:
        return {"BOSminer": BOSMINER_VERSION, "API": "3.7"}  # no Type (fixture bosminer-plus)
    if fam == BTMINER:
        # btminer's cgminer `version` layout is unconfirmed: keep it minimal and honest
        return {"Miner": "btminer", "API": "2.0.5", "Type": model_type(rig)}
    return {
        "CGMiner": "1.0.0",
        "Miner": _miner(rig),
        "CompileTime": STOCK_COMPILE_TIME,
        "API": "3.1",
        "Type": model_type(rig),
    }


# ---------------------------------------------------------------- summary


def _counters(v: RigView) -> tuple[int, int, int]:
    elapsed = _elapsed(v)
    shares = int(v.hashrate_ths * elapsed / 4.0)
    return elapsed, shares, shares // 500


def summary(rig: RigSim, v: RigView, now_s: float) -> Reply:
    if family(rig) == BTMINER:
        return _btminer_summary(rig, v, now_s)
    ghs = round(v.hashrate_ths * 1000.0, 2)
    elapsed, shares, rejected = _counters(v)
    out: Reply = {"Elapsed": elapsed}
    if family(rig) == BOSMINER:  # MH/s keys (firmware-apis.md 8.1)
        mhs = round(v.hashrate_ths * 1e6, 2)
        out.update({f"MHS {w}": mhs for w in ("av", "5s", "1m", "5m", "15m", "24h")})
    else:
        out["GHS 5s"] = ghs
        if family(rig) == LUXOS:
            out.update({"GHS 1m": ghs, "GHS 5m": ghs, "GHS 15m": ghs})
        out.update({"GHS av": ghs, "GHS 30m": ghs})
        if family(rig) == LUXOS:
            out["GHS 24h"] = ghs
    out.update(
        {
            "Found Blocks": 0,
            "Getworks": elapsed // 30,
            "Accepted": shares,
            "Rejected": rejected,
            "Hardware Errors": 0,
            "Utility": round(shares / max(1, elapsed) * 60, 2),
            "Discarded": shares * 2,
            "Stale": 0,
            "Get Failures": 0,
            "Local Work": shares * 4,
            "Remote Failures": 0,
            "Network Blocks": elapsed // 600,
            "Total MH": round(ghs * 1000.0 * elapsed, 1),
            "Work Utility": round(shares / max(1, elapsed) * 60, 2),
            "Difficulty Accepted": float(shares * 65536),
            "Difficulty Rejected": float(rejected * 65536),
            "Difficulty Stale": 0.0,
            "Best Share": 65536 * 17,
            "Device Hardware%": 0.0,
            "Device Rejected%": 0.2 if shares else 0.0,
            "Pool Rejected%": 0.2 if shares else 0.0,
            "Pool Stale%": 0.0,
            "Last getwork": int(now_s),
        }
    )
    return out


def _btminer_summary(rig: RigSim, v: RigView, now_s: float) -> Reply:
    m = rig.model
    mhs = round(v.hashrate_ths * 1e6, 2)
    elapsed, shares, rejected = _counters(v)
    chips = [c for c in v.chip_temps_c if c > 0] or [0.0]
    fans = v.fan_rpms
    power = round(v.power_w)
    limit = round(rig.power_limit_w if rig.power_limit_w is not None else m.max_power_w)
    return {
        "Elapsed": elapsed,
        "MHS av": mhs,
        "MHS 5s": mhs,
        "MHS 1m": mhs,
        "MHS 5m": mhs,
        "MHS 15m": mhs,
        "HS RT": mhs,
        "Accepted": shares,
        "Rejected": rejected,
        "Stale": 0,
        "Hardware Errors": 0,
        "Utility": round(shares / max(1, elapsed) * 60, 2),
        "Found Blocks": 0,
        "Best Share": 65536 * 17,
        "Target MHS": round(m.nominal_hashrate_ths * 1e6 * 0.99),
        "Factory GHS": round(m.nominal_hashrate_ths * 1000),
        "Power": power,
        "Power_RT": power,
        "Power Limit": limit,
        "Power Rate": round(v.power_w / v.hashrate_ths, 2) if v.hashrate_ths > 0 else 0.0,
        "Power Mode": "Normal",
        "Target Freq": FREQ_MHZ if v.awake else 0,
        "Temperature": round(max(v.pcb_temps_c), 1),
        "Env Temp": rig.ambient_c,
        "Chip Temp Min": round(min(chips) - 4.0, 1),
        "Chip Temp Max": round(max(chips), 1),
        "Chip Temp Avg": round(sum(chips) / len(chips) - 2.0, 2),
        "Fan Speed In": fans[0],
        "Fan Speed Out": fans[-1],
        "Power Fanspeed": 7200,
        "Power Voltage Input": 226.5,
        "Power Current Input": round(v.power_w / 226.5, 2),
        "Power Current": round(v.power_w / 226.5 * 17300),
        "Uptime": elapsed,
        "Hash Stable": v.hashrate_ths > 0,
        "Hash Stable Cost Seconds": min(elapsed, 1412),
        "Hash Deviation%": 0.0,
        "Error Code Count": 0,
        "Factory Error Code Count": 0,
        "MAC": "C4:11:04:00:00:01",
        "Firmware Version": "'20230616.16.Rel'",
        "Last getwork": int(now_s),
    }


# ---------------------------------------------------------------- stats


def _sensors(value: float) -> list[int]:
    """Four sensors of one board whose hottest reads `value` (firmware prints integers)."""
    top = round(value)
    return [top - 3, top - 1, top - 2, top] if top > 0 else [0, 0, 0, 0]


def _dash(values: list[int]) -> str:
    return "-".join(str(t) for t in values)


def stats(rig: RigSim, v: RigView) -> list[Reply]:
    if family(rig) == BOSMINER:
        # BOSminer+ `stats` carries no chain data (fixture bosminer-plus; an assumption there)
        return [
            {
                "STATS": 0,
                "ID": "ASC0",
                "Elapsed": _elapsed(v),
                "Calls": 0,
                "Wait": 0.0,
                "Max": 0.0,
                "Min": 99999999.0,
            }
        ]
    fam = family(rig)
    if fam == BTMINER:
        return [
            {
                "STATS": 0,
                "ID": "BTM0",
                "Elapsed": _elapsed(v),
                "Calls": 0,
                "Wait": 0.0,
                "Max": 0.0,
                "Min": 99999999.0,
            }
        ]
    m = rig.model
    lux = fam == LUXOS
    slots = _slots(rig)
    boards = max(1, m.boards)
    hashing = v.awake and v.hashrate_ths > 0
    fitted = [n for n in range(1, slots + 1) if n <= v.boards_ok and hashing]
    ghs = round(v.hashrate_ths * 1000.0, 2)
    per_board_ghs = ghs / max(1, len(fitted))
    head: Reply = {
        ("LUXminer" if lux else "CGMiner"): LUX_VERSION if lux else "1.0.0",
        "Miner": LUX_DESCRIPTION if lux else _miner(rig),
        "CompileTime": STOCK_COMPILE_TIME,
        "Type": model_type(rig),
    }
    s: Reply = {
        "STATS": 0,
        "ID": "BTM_SOC0",
        "Elapsed": _elapsed(v),
        "Calls": 0,
        "Wait": 0.0,
        "Max": 0.0,
        "Min": 99999999.0,
        "GHS 5s": ghs,
        "GHS av": ghs,
        "rate_30m": ghs,
        "Mode": 2 if v.awake else SLEEP_MODE,
        # a dead board drops out of miner_count; a sleeping rig keeps its count
        "miner_count": v.boards_ok if hashing else boards,
        "frequency": FREQ_MHZ if v.awake else 0,
        "fan_num": len(v.fan_rpms),
    }
    for i, rpm in enumerate(v.fan_rpms, start=1):
        s[f"fan{i}"] = rpm
    s["temp_num"] = len(fitted)
    chip = {n: _sensors(v.chip_temps_c[n - 1]) for n in fitted}
    pcb = {n: _sensors(v.pcb_temps_c[n - 1]) for n in fitted}
    empty = [0, 0, 0, 0]
    if lux:  # every slot, as floats, then the same strings as stock (no temp_pic)
        for n in range(1, slots + 1):
            s[f"temp{n}"] = float(max(pcb.get(n, empty)))
            s[f"temp2_{n}"] = float(max(chip.get(n, empty)))
    else:
        for n in fitted:  # numeric temps only for fitted chains, interleaved
            s[f"temp{n}"] = max(pcb[n])
            s[f"temp2_{n}"] = max(chip[n])
    for n in range(1, slots + 1):
        s[f"temp_pcb{n}"] = _dash(pcb.get(n, empty))
    for n in range(1, slots + 1):
        s[f"temp_chip{n}"] = _dash(chip.get(n, empty))
    if not lux:
        for n in range(1, slots + 1):
            s[f"temp_pic{n}"] = _dash([t - 10 for t in pcb[n]] if n in pcb else empty)
    s["total_rateideal"] = round(m.nominal_hashrate_ths * 1000.0, 2)
    s["rate_unit"] = "GH"
    s["total_freqavg"] = float(FREQ_MHZ) if v.awake else 0.0
    s["total_acn"] = CHIPS_PER_BOARD * len(fitted)
    s["total rate"] = ghs
    s["temp_max"] = max([max(p) for p in pcb.values()] or [0])
    s["no_matching_work"] = 0
    for n in range(1, slots + 1):
        s[f"chain_acn{n}"] = CHIPS_PER_BOARD if n in fitted else 0
    for n in range(1, slots + 1):
        s[f"chain_acs{n}"] = " " + " ".join(["oooooooo"] * 15) + " oooooo" if n in fitted else ""
    for n in range(1, slots + 1):
        s[f"chain_hw{n}"] = 0
    for n in range(1, slots + 1):
        s[f"chain_rate{n}"] = f"{per_board_ghs:.2f}" if n in fitted else ("0" if lux else "")
    for n in range(1, slots + 1):
        s[f"freq{n}"] = FREQ_MHZ if n in fitted else 0
    if _reports_chain_power(rig) and not lux:
        s["chain_power"] = f"{round(v.power_w)} W"
    s["miner_version"] = "luxminer" if lux else _miner(rig)
    s["miner_id"] = f"{_rig_number(rig):016x}"
    return [head, s]


# ---------------------------------------------------------------- devs


def devs(rig: RigSim, v: RigView) -> list[Reply]:
    fam = family(rig)
    if fam == BOSMINER:
        return _bosminer_devs(rig, v)
    m = rig.model
    boards = max(1, m.boards)
    per_board_mhs = v.hashrate_ths * 1e6 / max(1, v.boards_ok)
    elapsed = _elapsed(v)
    if fam == STOCK:
        # one device for the whole rig; S19-era firmware reports zeros there
        real = _reports_chain_power(rig)
        mhs = round(v.hashrate_ths * 1e6, 2) if real else 0.0
        temp = round(max(v.chip_temps_c), 1) if real else 0.0
        return [
            {
                "ASC": 0,
                "Name": "BTM_SOC",
                "ID": 0,
                "Enabled": "Y",
                "Status": "Alive",
                # Vnish fixes the stock typo (fixture vnish-s19)
                ("Temperature" if real or _vnish(rig) else "Tenperature"): temp,
                **_dev_counters(mhs),
                **_dev_share_tail(elapsed),
            }
        ]
    entries: list[Reply] = []
    for b in range(boards):
        alive = b < v.boards_ok
        mhs = round(per_board_mhs, 2) if alive else 0.0
        temp = round(v.chip_temps_c[b], 1)
        common: Reply = {"ASC": b}
        if fam == LUXOS:
            common.update({"Name": "BTM_SOC", "ID": b})
        else:
            common["Slot"] = b
        common.update({"Enabled": "Y", "Status": "Alive" if alive else "Dead", "Temperature": temp})
        if fam == BTMINER:
            common.update(
                {
                    "Chip Frequency": FREQ_MHZ,
                    "Fan Speed In": v.fan_rpms[0],
                    "Fan Speed Out": v.fan_rpms[-1],
                }
            )
        common.update(_dev_counters(mhs))
        if fam == LUXOS:
            prof = rig.model.profile(rig.profile) if rig.profile else None
            common.update(
                {
                    "Board": b,
                    "Connector": b,
                    "Profile": rig.profile or "",
                    "SerialNumber": f"SIM{_rig_number(rig) % 10**8:08d}B{b}",
                    "Nominal MHS": round(
                        (prof.hashrate_ths if prof else m.nominal_hashrate_ths) * 1e6 / boards, 2
                    ),
                    "IsRamping": False,
                    "Device Elapsed": elapsed,
                }
            )
        else:
            common.update(_btminer_dev_tail(v, b, elapsed))
        entries.append(common)
    return entries


def _dev_counters(mhs: float) -> Reply:
    """The rate and share keys every `devs` entry carries, in the firmware's order."""
    return {
        "MHS av": mhs,
        "MHS 5s": mhs,
        "MHS 1m": mhs,
        "MHS 5m": mhs,
        "MHS 15m": mhs,
        "Accepted": 0,
        "Rejected": 0,
        "Hardware Errors": 0,
    }


def _dev_share_tail(elapsed: int) -> Reply:
    """The share statistics after the rates in a cgminer/btminer `devs` entry (all zero:
    the simulator mines no shares)."""
    return {
        "Utility": 0.0,
        "Last Share Pool": 0,
        "Last Share Time": 0,
        "Total MH": 0.0,
        "Diff1 Work": 0,
        "Difficulty Accepted": 0.0,
        "Difficulty Rejected": 0.0,
        "Last Share Difficulty": 0.0,
        "Last Valid Work": 0,
        "Device Hardware%": 0.0,
        "Device Rejected%": 0.0,
        "Device Elapsed": elapsed,
    }


def _btminer_dev_tail(v: RigView, b: int, elapsed: int) -> Reply:
    chip = round(v.chip_temps_c[b], 1)
    return {
        **_dev_share_tail(elapsed),
        "Upfreq Complete": 1,
        "Effective Chips": CHIPS_PER_BOARD if b < v.boards_ok else 0,
        "PCB SN": f"SIMPCB{b:02d}",
        "Chip Temp Min": round(chip - 4.0, 1),
        "Chip Temp Max": chip,
        "Chip Temp Avg": round(chip - 2.0, 1),
    }


def _bosminer_devs(rig: RigSim, v: RigView) -> list[Reply]:
    """One device per fitted board with MH/s and its nominal (fixture bosminer-plus)."""
    m = rig.model
    boards = max(1, m.boards)
    per_board_mhs = round(v.hashrate_ths * 1e6 / max(1, v.boards_ok), 2) if v.awake else 0.0
    nominal = round(m.nominal_hashrate_ths * 1e6 / boards, 4)
    elapsed = _elapsed(v)
    out: list[Reply] = []
    for b in range(boards):
        ok = b < v.boards_ok
        mhs = per_board_mhs if ok else 0.0
        out.append(
            {
                "ASC": b,
                "Name": "BC5",
                "ID": b,
                "Enabled": "Y",
                "Status": "Alive" if ok else "Dead",
                "Temperature": round(v.chip_temps_c[b], 1) if b < len(v.chip_temps_c) else 0.0,
                "MHS av": mhs,
                "MHS 5s": mhs,
                "MHS 1m": mhs,
                "MHS 5m": mhs,
                "MHS 15m": mhs,
                "Nominal MHS": nominal,
                "Accepted": 0,
                "Rejected": 0,
                "Hardware Errors": 0,
                "Device Elapsed": elapsed,
            }
        )
    return out
