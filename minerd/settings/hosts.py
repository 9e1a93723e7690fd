"""Rig host lists and CSV inventories: check them and find overlaps without expanding.

The syntax is the one minerd.devices.inventory expands (IPs, CIDRs, ranges "10.0.0.10-20",
host names; CSV id,host,port,container[,model_hint]), so a config that passes here expands
there. A CIDR is one interval here, never 16M addresses: overlaps are found by sorting
integer intervals and sweeping once, so 50,000 CSV rows stay cheap.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from minerd.devices.inventory import MAX_EXPANDED_HOSTS, expand_hosts, read_inventory_csv
from minerd.settings.models import RigGroupSettings

NAME_SPACE = 0  # HostSpan.version for host names (4 and 6 are IP versions)


@dataclass(frozen=True)
class HostEntry:
    """One hosts entry as an interval: version 4/6 with integer bounds, or a host name."""

    label: str
    version: int
    first: int
    last: int
    count: int


@dataclass(frozen=True)
class HostSpan:
    """An entry or CSV row of a rig group on one port, for the overlap sweep."""

    group: int
    field: str  # "hosts" or "csv"
    label: str
    version: int
    port: int
    first: int
    last: int
    # Rigs behind one Modbus PLC share its address and differ by unit id.
    unit: int = 0


def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.lower().encode(), digest_size=8).digest())


def _address_entry(label: str, host: str) -> HostEntry:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        key = _name_key(host)
        return HostEntry(label, NAME_SPACE, key, key, 1)
    return HostEntry(label, addr.version, int(addr), int(addr), 1)


def parse_host_entry(text: str) -> HostEntry:
    """An IP, CIDR, range or host name; ValueError with an operator-facing message."""
    entry = text.strip()
    if "/" in entry:
        try:
            net = ipaddress.ip_network(entry, strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"'{text}' is not a valid network") from None
            raise ValueError(f"'{text}' has host bits set (did you mean '{loose}'?)") from None
        first = int(net.network_address)
        # as ipaddress.hosts() and expand_hosts count: no network/broadcast (v4 below /31),
        # no subnet-router anycast (v6 below /127)
        count = net.num_addresses
        if net.version == 4 and net.prefixlen < 31:
            count -= 2
        elif net.version == 6 and net.prefixlen < 127:
            count -= 1
        return HostEntry(entry, net.version, first, first + net.num_addresses - 1, count)
    hosts = expand_hosts([entry])  # IP, range or name: small by construction of the syntax
    if len(hosts) == 1:
        return _address_entry(entry, hosts[0])
    first_addr, last_addr = ipaddress.ip_address(hosts[0]), ipaddress.ip_address(hosts[-1])
    return HostEntry(entry, first_addr.version, int(first_addr), int(last_addr), len(hosts))


def check_hosts(key: str, hosts: tuple[str, ...]) -> tuple[list[HostEntry], list[str]]:
    """Parsed entries and problems (`rigs[0].hosts: ...`) of one group's hosts list."""
    entries: list[HostEntry] = []
    problems: list[str] = []
    for text in hosts:
        try:
            entries.append(parse_host_entry(text))
        except ValueError as e:
            problems.append(f"{key}: {e}")
    total = sum(e.count for e in entries)
    if total > MAX_EXPANDED_HOSTS:
        problems.append(
            f"{key}: {total} addresses, more than {MAX_EXPANDED_HOSTS} (a /8 meant as a /24?)"
        )
    return entries, problems


def host_count(hosts: tuple[str, ...]) -> int:
    """Rigs a (valid) hosts list names, as expand_hosts counts them, without expanding CIDRs."""
    return sum(parse_host_entry(h).count for h in hosts)


def check_csv(key: str, path: Path, default_port: int) -> tuple[list[HostSpan], list[str]]:
    """Spans (group index 0; caller re-indexes) and one problem per bad CSV line."""
    try:
        rows = read_inventory_csv(path, default_port=default_port)
    except ValueError as e:
        if not path.is_file():
            return [], [f"{key}: file not found: {path}"]
        text = str(e).removeprefix(f"{path}: ")
        return [], [f"{key}: {part}" for part in text.split("; ")]
    spans = []
    for row in rows:
        entry = _address_entry(row.host, row.host)
        spans.append(HostSpan(0, "csv", row.host, entry.version, row.port, entry.first, entry.last))
    return spans, []


def group_spans(
    index: int, group: RigGroupSettings, entries: list[HostEntry], csv_spans: list[HostSpan]
) -> list[HostSpan]:
    unit = group.unit_id if group.driver == "modbus" else 0
    spans = [
        HostSpan(index, "hosts", e.label, e.version, group.port, e.first, e.last, unit)
        for e in entries
    ]
    spans.extend(
        HostSpan(index, s.field, s.label, s.version, s.port, s.first, s.last, unit)
        for s in csv_spans
    )
    return spans


def overlap_problems(spans: list[HostSpan]) -> list[str]:
    """'rigs[2].hosts: 10.0.0.5 overlaps rigs[0].hosts' once per pair of groups (same port).

    Sweep in address order keeping, per group, the span reaching furthest; a new span is
    compared with those still open. Groups are few, so this stays near O(n log n).
    """
    problems: list[str] = []
    reported: set[tuple[int, str, int, str]] = set()
    ordered = sorted(spans, key=lambda s: (s.version, s.port, s.unit, s.first, -s.last))
    open_spans: dict[int, HostSpan] = {}
    wire: tuple[int, int, int] | None = None
    for span in ordered:
        if (span.version, span.port, span.unit) != wire:
            wire, open_spans = (span.version, span.port, span.unit), {}
        for group, other in list(open_spans.items()):
            if other.last < span.first:
                del open_spans[group]
                continue
            later, earlier = (span, other) if span.group >= other.group else (other, span)
            pair = (later.group, later.field, earlier.group, earlier.field)
            if pair in reported:
                continue
            reported.add(pair)
            where = f"rigs[{later.group}].{later.field}"
            if later.group != earlier.group:
                problems.append(
                    f"{where}: {later.label} overlaps rigs[{earlier.group}].{earlier.field}"
                )
            else:
                problems.append(f"{where}: {later.label} overlaps {earlier.label}")
        current = open_spans.get(span.group)
        if current is None or span.last > current.last:
            open_spans[span.group] = span
    return problems
