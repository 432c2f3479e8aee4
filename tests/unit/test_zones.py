"""The DES zones description: upstream files accepted unchanged, every mistake named."""

from __future__ import annotations

from typing import Any

import pytest

from desfs.settings.zones import Zone, Zones, ZonesError, parse_zones, shard_index_of_key


def _zone(name: str, start: Any, end: Any, **s3: Any) -> dict[str, Any]:
    return {"name": name, "range": {"start": start, "end": end}, "s3": {"bucket": name, **s3}}


def test_upstream_defaults_and_spellings() -> None:
    found = parse_zones({"zones": [_zone("b", "128", 255), _zone("a", 0, "127", prefix="p")]})
    assert found == Zones(8, (Zone("a", 0, 127, "a", "p/"), Zone("b", 128, 255, "b", "")))
    assert found.zone_of(127) == found.zones[0] and found.zone_of(128) == found.zones[1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"zones": []}, "non-empty 'zones:' list"),
        ({"n_bits": 3, "zones": [_zone("a", 0, 7)]}, "n_bits: 3 is outside 4..16"),
        ({"n_bits": 4, "zones": [_zone("a", 0, 15), _zone("a", 0, 0)]}, "'a' is named twice"),
        ({"n_bits": 4, "zones": [_zone("a", 5, 2)]}, "zone 'a': range 5..2 is not inside"),
        ({"n_bits": 4, "zones": [_zone("a", -1, 15)]}, "zone 'a': range -1..15 is not inside"),
        ({"n_bits": 4, "zones": [_zone("a", 1, 15)]}, "indices 0..0 (before zone 'a')"),
        ({"n_bits": 4, "zones": [_zone("a", 0, 14)]}, "indices 15..15 (after zone 'a')"),
        ({"n_bits": 4, "zones": [{**_zone("a", 0, 15), "weight": 1}]}, "unknown key 'weight'"),
        ({"n_bits": 4, "zones": [_zone("a", 0, 15, endpoint_url="ftp://x")]}, "not an http"),
        ({"n_bits": 4, "zones": [_zone("a", 0, 15, bucket="")]}, "s3.bucket must be"),
        ({"n_bits": 4, "zones": [_zone("a", 0, 15)], "allow_gaps": "yes"}, "allow_gaps: 'yes'"),
        ({"n_bits": 4, "zones": [_zone("a", True, 15)]}, "range start: True is not an integer"),
    ],
)
def test_mistakes_name_the_zone(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ZonesError) as caught:
        parse_zones(data)
    assert message in str(caught.value)


def test_gaps_allowed_when_the_file_says_so() -> None:
    found = parse_zones({"n_bits": 4, "allow_gaps": True, "zones": [_zone("a", 2, 5)]})
    assert found.zone_of(1) is None and found.zone_of(6) is None and found.zone_of(3) is not None


@pytest.mark.parametrize(
    ("key", "index"),
    [
        ("20250101_A_0000.des", 10),
        ("20250101_3F_0002.meta", 63),
        ("20250101/FF.des", 255),
        ("2025-01-01/0a.des", 10),
        ("20250101/08_00A5.des", None),
        ("_bigFiles/" + "a" * 64, None),
        ("nested/20250101_A_0000.des", None),
        ("20250101_a_0000.des", None),
    ],
)
def test_shard_index_of_key(key: str, index: int | None) -> None:
    assert shard_index_of_key(key) == index
