"""Each firmware breakage seen in the wild is repaired, or rejected with a clear reason."""

from __future__ import annotations

import pytest

from minerd.transports.jsonrepair import JsonRepairError, loads_lenient


def test_valid_json_fast_path_and_trailing_nul() -> None:
    assert loads_lenient(b'{"STATUS":[{"STATUS":"S"}],"id":1}\x00') == {
        "STATUS": [{"STATUS": "S"}],
        "id": 1,
    }


def test_trailing_comma_in_object_and_array() -> None:
    got = loads_lenient(b'{"a": [1, 2, ], "b": {"c": 3 ,} ,}')
    assert got == {"a": [1, 2], "b": {"c": 3}}


def test_glued_objects_inside_array() -> None:
    # bmminer stats: STATS entries glued without a comma.
    got = loads_lenient(b'{"STATS":[{"BMMiner":"1.0"}{"chain_acn1":63}]}')
    assert got == {"STATS": [{"BMMiner": "1.0"}, {"chain_acn1": 63}]}


def test_glued_top_level_objects_are_merged_first_key_wins() -> None:
    got = loads_lenient(b'{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"x":1}]}{"STATUS":[],"id":2}')
    assert got == {"STATUS": [{"STATUS": "S"}], "SUMMARY": [{"x": 1}], "id": 2}


@pytest.mark.parametrize("token", ["inf", "-inf", "nan", "NaN", "Infinity", "-Infinity", "INF"])
def test_bare_non_finite_numbers_become_null(token: str) -> None:
    got = loads_lenient(f'{{"temp": {token}, "ok": 1}}')
    assert got == {"temp": None, "ok": 1}


def test_quoted_inf_string_is_left_alone() -> None:
    assert loads_lenient(b'{"Msg": "inf", "x": "a,}b}{c"}') == {"Msg": "inf", "x": "a,}b}{c"}


def test_control_characters() -> None:
    # Raw tab/newline inside a string and stray control bytes between tokens.
    got = loads_lenient(b'{"Description":"line1\nline2\tx",\x01"n":\x02 5}')
    assert got == {"Description": "line1\nline2\tx", "n": 5}


def test_all_breakages_at_once() -> None:
    raw = b'{"STATS":[{"a":inf,}{"b":[1,2,],},],"STATUS":[{"STATUS":"S",}]}\x00'
    assert loads_lenient(raw) == {
        "STATS": [{"a": None}, {"b": [1, 2]}],
        "STATUS": [{"STATUS": "S"}],
    }


@pytest.mark.parametrize(
    "raw",
    [
        b'{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"MHS 5s":1',
        b'{"STATS":[{"temp2_4":0.',  # cut inside a number
        b'{"a": "unterminat',
        b"",
        b"\x00",
    ],
)
def test_truncated_reply_is_rejected(raw: bytes) -> None:
    with pytest.raises(JsonRepairError) as info:
        loads_lenient(raw)
    assert info.value.truncated
    assert "truncated" in str(info.value) or "empty" in str(info.value)


def test_garbage_is_rejected_with_position() -> None:
    with pytest.raises(JsonRepairError, match="invalid JSON at char") as info:
        loads_lenient(b'{"a": 1 "b": 2}')
    assert not info.value.truncated


def test_top_level_non_object_sequence_rejected() -> None:
    with pytest.raises(JsonRepairError, match="not an object"):
        loads_lenient(b"{}[1]")
