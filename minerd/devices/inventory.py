"""Rig inventories: host lists, CIDR ranges, address ranges and CSV files, expanded to rigs.

`expand_hosts` turns config entries into addresses: "10.0.0.5", "10.1.0.0/24" (network and
broadcast excluded below /31), "10.0.0.10-10.0.0.20" or "10.0.0.10-20", and host names.
`read_inventory_csv` reads `id,host,port,container[,model_hint]` with line-numbered errors.
A rig's id defaults to its host, or "host:port" when the port is not 4028.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_RIG_PORT",
    "MAX_EXPANDED_HOSTS",
    "InventoryRow",
    "expand_hosts",
    "read_inventory_csv",
    "rig_id_for",
    "rows_for_hosts",
    "write_inventory_csv",
    "write_inventory_rows",
]

DEFAULT_RIG_PORT = 4028
# A typo like /8 instead of /24 must fail loudly, not create 16 million rigs.
MAX_EXPANDED_HOSTS = 131_072
CSV_COLUMNS = ("id", "host", "port", "container", "model_hint")
_NUMERIC_RE = re.compile(r"^[0-9.\-]+$")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True)
class InventoryRow:
    id: str
    host: str
    port: int = DEFAULT_RIG_PORT
    container: str = ""
    model_hint: str = ""


def rig_id_for(host: str, port: int = DEFAULT_RIG_PORT) -> str:
    return host if port == DEFAULT_RIG_PORT else f"{host}:{port}"


def _expand_cidr(entry: str) -> list[str]:
    try:
        net = ipaddress.ip_network(entry, strict=True)
    except ValueError as exc:
        text = str(exc)
        if "has host bits set" in text:
            loose = ipaddress.ip_network(entry, strict=False)
            raise ValueError(
                f"rig hosts entry {entry!r}: host bits set; did you mean {loose}?"
            ) from None
        raise ValueError(f"rig hosts entry {entry!r}: invalid CIDR ({text})") from None
    if net.num_addresses > MAX_EXPANDED_HOSTS:
        raise ValueError(
            f"rig hosts entry {entry!r}: {net.num_addresses} addresses, more than "
            f"{MAX_EXPANDED_HOSTS}; use a longer prefix"
        )
    # hosts() skips network and broadcast below /31 (v4) and /127 (v6), keeps all above.
    return [str(ip) for ip in net.hosts()]


def _expand_range(entry: str) -> list[str]:
    first_text, _, last_text = (part.strip() for part in entry.partition("-"))
    try:
        first = ipaddress.ip_address(first_text)
    except ValueError:
        raise ValueError(
            f"rig hosts entry {entry!r}: {first_text!r} is not an IP address"
        ) from None
    try:
        if last_text.isdigit() and first.version == 4:
            # "10.0.0.10-20": the last octet
            last = ipaddress.ip_address(first_text.rsplit(".", 1)[0] + "." + last_text)
        else:
            last = ipaddress.ip_address(last_text)
    except ValueError:
        raise ValueError(f"rig hosts entry {entry!r}: {last_text!r} is not an IP address") from None
    if last.version != first.version or int(last) < int(first):
        raise ValueError(f"rig hosts entry {entry!r}: range end is before its start")
    count = int(last) - int(first) + 1
    if count > MAX_EXPANDED_HOSTS:
        raise ValueError(f"rig hosts entry {entry!r}: {count} addresses, more than allowed")
    return [str(ipaddress.ip_address(int(first) + i)) for i in range(count)]


def _single_host(text: str) -> str | None:
    """One IP address (normalised) or host name, else None."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    # digits, dots and dashes only: a mistyped address or range, not a name
    if _HOSTNAME_RE.match(text) and not _NUMERIC_RE.match(text):
        return text
    return None


def _expand_one(entry: str) -> list[str]:
    text = entry.strip()
    if not text:
        raise ValueError("rig hosts entry is empty")
    if "/" in text:
        return _expand_cidr(text)
    if "-" in text and text.replace("-", "").replace(".", "").replace(":", "").isalnum():
        try:
            return _expand_range(text)
        except ValueError:
            if not _HOSTNAME_RE.match(text) or _NUMERIC_RE.match(text):
                raise
    single = _single_host(text)
    if single is not None:
        return [single]
    raise ValueError(f"rig hosts entry {entry!r}: not an IP address, CIDR, range or host name")


def expand_hosts(entries: Iterable[str]) -> list[str]:
    """Every host the entries name, in order, each once. ValueError names the bad entry."""
    seen: set[str] = set()
    out: list[str] = []
    for entry in entries:
        for host in _expand_one(entry):
            if host not in seen:
                seen.add(host)
                out.append(host)
        if len(out) > MAX_EXPANDED_HOSTS:
            raise ValueError(f"rig hosts expand to more than {MAX_EXPANDED_HOSTS} addresses")
    return out


def rows_for_hosts(
    entries: Iterable[str], port: int = DEFAULT_RIG_PORT, container: str = ""
) -> list[InventoryRow]:
    """Inventory rows for a `hosts` list (ids from rig_id_for)."""
    return [InventoryRow(rig_id_for(h, port), h, port, container) for h in expand_hosts(entries)]


def read_inventory_csv(
    path: str | Path, default_port: int = DEFAULT_RIG_PORT, default_container: str = ""
) -> list[InventoryRow]:
    """Rows of an inventory CSV with a header naming at least `host`.

    Columns: id (default from host/port), host, port (default default_port), container,
    model_hint (optional). Blank lines and lines starting with '#' are skipped. Every
    problem is reported with its line number; all problems at once.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"{p}: cannot read inventory: {exc.strerror or exc}") from None
    lines = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise ValueError(f"{p}: inventory is empty (want a header: {','.join(CSV_COLUMNS)})")
    reader = csv.reader([line for _, line in lines])
    header = [h.strip().lower() for h in next(reader)]
    problems: list[str] = []
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        problems.append(f"line {lines[0][0]}: unknown column(s) {unknown}; known: {CSV_COLUMNS}")
    if "host" not in header:
        problems.append(f"line {lines[0][0]}: header has no 'host' column")
    if problems:
        raise ValueError(f"{p}: " + "; ".join(problems))
    rows: list[InventoryRow] = []
    ids: dict[str, int] = {}
    endpoints: dict[tuple[str, int], int] = {}
    for (lineno, _), fields in zip(lines[1:], reader, strict=True):
        if len(fields) > len(header):
            problems.append(f"line {lineno}: {len(fields)} fields, header has {len(header)}")
            continue
        rec = {h: v.strip() for h, v in zip(header, fields, strict=False)}
        host = rec.get("host", "")
        if not host:
            problems.append(f"line {lineno}: host is empty")
            continue
        single = _single_host(host)
        if single is None:
            problems.append(f"line {lineno}: host {host!r} is not one IP address or host name")
            continue
        host = single
        port_text = rec.get("port", "")
        try:
            port = int(port_text) if port_text else default_port
            if not 1 <= port <= 65535:
                raise ValueError
        except ValueError:
            problems.append(f"line {lineno}: port {port_text!r} is not 1..65535")
            continue
        rig_id = rec.get("id") or rig_id_for(host, port)
        if rig_id in ids:
            problems.append(f"line {lineno}: id {rig_id!r} already on line {ids[rig_id]}")
            continue
        if (host, port) in endpoints:
            problems.append(
                f"line {lineno}: {host}:{port} already on line {endpoints[(host, port)]}"
            )
            continue
        ids[rig_id] = lineno
        endpoints[(host, port)] = lineno
        rows.append(
            InventoryRow(
                id=rig_id,
                host=host,
                port=port,
                container=rec.get("container") or default_container,
                model_hint=rec.get("model_hint", ""),
            )
        )
    if problems:
        raise ValueError(f"{p}: " + "; ".join(problems))
    return rows


def write_inventory_csv(path: str | Path, rows: Iterable[InventoryRow]) -> None:
    """Write rows with the CSV_COLUMNS header (the format read_inventory_csv reads)."""
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        write_inventory_rows(fh, rows)


def write_inventory_rows(fh: TextIO, rows: Iterable[InventoryRow]) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([r.id, r.host, r.port, r.container, r.model_hint])
