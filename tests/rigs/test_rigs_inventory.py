"""Rig inventory: host lists, CIDRs, ranges and CSV files."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerd.devices.inventory import (
    InventoryRow,
    expand_hosts,
    read_inventory_csv,
    rig_id_for,
    rows_for_hosts,
    write_inventory_csv,
)


def test_ips_cidrs_ranges_and_names_in_order_without_duplicates() -> None:
    hosts = expand_hosts(
        ["10.0.0.9", "10.0.0.8/30", "10.0.1.10-12", "10.0.2.1-10.0.2.2", "rig-01.site", "10.0.0.9"]
    )
    assert hosts == [
        "10.0.0.9",
        "10.0.0.10",  # /30 without network .8 and broadcast .11 (.9 already listed)
        "10.0.1.10",
        "10.0.1.11",
        "10.0.1.12",
        "10.0.2.1",
        "10.0.2.2",
        "rig-01.site",
    ]


def test_cidr_sizes() -> None:
    assert len(expand_hosts(["10.1.0.0/24"])) == 254
    assert expand_hosts(["10.1.0.0/31"]) == ["10.1.0.0", "10.1.0.1"]
    assert expand_hosts(["10.1.0.7/32"]) == ["10.1.0.7"]
    assert len(expand_hosts(["10.2.0.0/16"])) == 65534


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("10.0.0.1/24", r"'10\.0\.0\.1/24': host bits set; did you mean 10\.0\.0\.0/24\?"),
        ("10.0.0.0/33", r"'10\.0\.0\.0/33': invalid CIDR"),
        ("10.0.0.0/8", r"16777216 addresses, more than"),
        ("300.1.1.1", r"'300\.1\.1\.1': not an IP address, CIDR, range or host name"),
        ("10.0.0.20-10", r"range end is before its start"),
        ("", r"empty"),
    ],
)
def test_bad_entries_are_named_precisely(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expand_hosts(["10.9.9.9", entry])


def test_rig_id_default() -> None:
    assert rig_id_for("10.0.0.1") == "10.0.0.1"
    assert rig_id_for("10.0.0.1", 4029) == "10.0.0.1:4029"
    rows = rows_for_hosts(["10.0.0.1-2"], port=4030, container="c1")
    assert rows == [
        InventoryRow("10.0.0.1:4030", "10.0.0.1", 4030, "c1"),
        InventoryRow("10.0.0.2:4030", "10.0.0.2", 4030, "c1"),
    ]


def test_csv_roundtrip_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rigs.csv"
    path.write_text(
        "id,host,port,container\n"
        "# comment line\n"
        "r1,10.0.0.1,4028,c001\n"
        ",10.0.0.2,,c001\n"
        "\n"
        ",10.0.0.3,4029,\n"
    )
    rows = read_inventory_csv(path, default_container="c999")
    assert rows == [
        InventoryRow("r1", "10.0.0.1", 4028, "c001"),
        InventoryRow("10.0.0.2", "10.0.0.2", 4028, "c001"),
        InventoryRow("10.0.0.3:4029", "10.0.0.3", 4029, "c999"),
    ]
    out = tmp_path / "out.csv"
    write_inventory_csv(out, rows)
    assert read_inventory_csv(out) == rows


def test_csv_errors_have_line_numbers_all_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "id,host,port,container\n"
        "r1,10.0.0.1,4028,c1\n"
        "r2,10.0.0.0/24,4028,c1\n"
        "r3,10.0.0.3,99999,c1\n"
        "r1,10.0.0.4,4028,c1\n"
        "r5,10.0.0.1,4028,c1\n"
        "r6,,4028,c1\n"
        "r7,10.0.0.7,4028,c1,x,y\n"
    )
    with pytest.raises(ValueError) as info:
        read_inventory_csv(path)
    msg = str(info.value)
    assert "line 3: host '10.0.0.0/24' is not one IP address" in msg
    assert "line 4: port '99999' is not 1..65535" in msg
    assert "line 5: id 'r1' already on line 2" in msg
    assert "line 6: 10.0.0.1:4028 already on line 2" in msg
    assert "line 7: host is empty" in msg
    assert "line 8: 6 fields, header has 4" in msg


def test_csv_header_problems(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("name,address\nx,10.0.0.1\n")
    with pytest.raises(ValueError, match=r"unknown column.*no 'host' column"):
        read_inventory_csv(path)
    with pytest.raises(ValueError, match="cannot read inventory"):
        read_inventory_csv(tmp_path / "missing.csv")
