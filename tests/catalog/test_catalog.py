"""The hardware and price catalog: the shipped files, user files, and every problem at once."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest

from tierml.catalog import FIELDS, load_catalog
from tierml.catalog.loading import catalog_from_texts, packaged_files
from tierml.core.errors import CatalogError, UnknownProfileError
from tierml.core.tiers import TierKind

PI = """
format = "tierml.catalog/1"

[tier.my-board]
kind = "device"
description = "a measured board"
cores = 4
memory_mb = 2048
conv_gflops = 10.0
gemm_gflops = 5.0
memory_gbps = 4.0
power_active_w = 5.0
power_idle_w = 2.0
battery = true

[tier.my-board.sources]
cores = "datasheet"
memory_mb = "datasheet"
conv_gflops = "measured with tierml profile"
gemm_gflops = "measured"
memory_gbps = "STREAM triad"
power_active_w = "USB power meter"
power_idle_w = "USB power meter"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_shipped_catalog_loads_and_covers_every_class_of_tier():
    catalog = load_catalog()
    kinds = {t.kind for t in catalog.tiers.values()}
    assert kinds == set(TierKind)
    for name in ("raspberry-pi-4", "jetson-nano", "jetson-orin-nano", "c6i.large", "g4dn.xlarge"):
        assert name in catalog.tiers, name
    assert any(t.battery for t in catalog.tiers.values())  # a phone
    assert any(t.usd_per_hour for t in catalog.tiers.values())
    assert {"3g", "lte", "5g", "wifi", "lan", "wan"} <= set(catalog.links)
    assert {"3g", "lte", "wifi"} <= set(catalog.radios)
    assert {"aws-lambda-x86", "aws-lambda-arm"} <= set(catalog.faas)


def test_every_shipped_figure_carries_a_source():
    """The loader enforces it; this reads the raw TOML so the check does not trust it."""
    for origin, text in packaged_files():
        data = tomllib.loads(text)
        for section, entries in data.items():
            if section == "format":
                continue
            for name, entry in entries.items():
                for key, value in entry.items():
                    numeric = FIELDS[section][key].numeric if key in FIELDS[section] else False
                    if numeric:
                        assert entry["sources"].get(key, "").strip(), f"{origin} {name}.{key}"
                        assert value is not None


def test_shipped_links_name_radios_that_exist():
    catalog = load_catalog()
    for link in catalog.links.values():
        if link.radio is not None:
            assert link.radio in catalog.radios
    assert catalog.link("lte").radio == "lte"


def test_a_user_file_adds_profiles(tmp_path):
    catalog = load_catalog([write(tmp_path, "mine.toml", PI)])
    board = catalog.tier("my-board")
    assert board.kind is TierKind.DEVICE and board.battery and board.trusted
    assert board.throughput.by_class() == {"conv": 10.0, "gemm": 5.0, "memory": 4.0}
    assert board.origin.endswith("mine.toml")
    assert board.sources["memory_gbps"] == "STREAM triad"


def test_files_under_the_home_are_read(tmp_path):
    (tmp_path / "catalog").mkdir()
    write(tmp_path / "catalog", "a.toml", PI)
    assert "my-board" in load_catalog(home=tmp_path).tiers
    assert "my-board" not in load_catalog(home=tmp_path / "elsewhere").tiers


def test_a_user_entry_replaces_a_shipped_one(tmp_path):
    text = PI.replace("tier.my-board", "tier.raspberry-pi-4")
    catalog = load_catalog([write(tmp_path, "pi.toml", text)])
    assert catalog.tier("raspberry-pi-4").description == "a measured board"


def test_two_user_files_defining_one_name_is_an_error(tmp_path):
    a, b = write(tmp_path, "a.toml", PI), write(tmp_path, "b.toml", PI)
    with pytest.raises(CatalogError) as info:
        load_catalog([a, b])
    assert "b.toml: [tier.my-board]: already defined in" in info.value.message


def test_every_problem_is_reported_at_once_with_file_and_key(tmp_path):
    bad = PI.replace("cores = 4\n", 'cores = "four"\n', 1)
    bad = bad.replace("conv_gflops = 10.0", "conv_gflops = -1.0")
    bad = bad.replace('memory_gbps = "STREAM triad"\n', "")  # a figure without its source
    bad = bad.replace('kind = "device"', 'kind = "phone"')
    bad += '\n[link.slow]\ndescription = "x"\nuplink_mbps = 1.0\nrtt_ms = 10.0\nloss = 2.0\n'
    bad += "[link.slow.sources]\nuplink_mbps = 'x'\nrtt_ms = 'x'\nloss = 'x'\nspeed = 'y'\n"
    path = write(tmp_path, "bad.toml", bad)
    with pytest.raises(CatalogError) as info:
        load_catalog([path])
    problems = info.value.problems
    expected = [
        "[tier.my-board] kind: expected one of device, edge, cloud, got 'phone'",
        "[tier.my-board] cores: expected an integer, got 'four'",
        "[tier.my-board] conv_gflops: expected a positive number, got -1.0",
        "[tier.my-board] sources.memory_gbps: missing; every figure needs its source",
        "[link.slow] downlink_mbps: missing",
        "[link.slow] loss: expected a fraction between 0 and 1, got 2.0",
        "[link.slow] sources.speed: not a numeric field of [link]",
    ]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    assert all(p.startswith(str(path)) for p in problems)
    assert len(problems) == len(expected)
    line = info.value.one_line()
    assert line.startswith("error[E_CATALOG]: 7 problems in the catalog:") and "\n" not in line


def test_files_that_are_not_catalogs(tmp_path):
    broken = write(tmp_path, "broken.toml", "format = \n")
    missing = tmp_path / "missing.toml"
    other = write(tmp_path, "other.toml", 'format = "something/2"\n[tiers.x]\na = 1\n')
    with pytest.raises(CatalogError) as info:
        load_catalog([broken, missing, other])
    text = " | ".join(info.value.problems)
    assert "broken.toml: not valid TOML" in text
    assert "missing.toml: cannot read" in text
    assert 'other.toml: format: expected "tierml.catalog/1"' in text
    assert "other.toml: [tiers]: unknown section" in text


def test_a_link_naming_an_unknown_radio(tmp_path):
    text = """
    format = "tierml.catalog/1"
    [link.sat]
    description = "satellite"
    uplink_mbps = 10.0
    downlink_mbps = 100.0
    rtt_ms = 600.0
    loss = 0.01
    radio = "starlink"
    [link.sat.sources]
    uplink_mbps = "x"
    downlink_mbps = "x"
    rtt_ms = "x"
    loss = "x"
    """
    with pytest.raises(CatalogError) as info:
        load_catalog([write(tmp_path, "sat.toml", text)])
    assert "[link.sat] radio: no radio profile 'starlink'; known: " in info.value.message


def test_unknown_names_list_the_known_ones():
    catalog = catalog_from_texts([("mem", PI)])
    with pytest.raises(UnknownProfileError) as info:
        catalog.tier("my-bord")
    assert info.value.code == "E_UNKNOWN_PROFILE"
    assert 'No tier profile named "my-bord"; known: my-board.' in info.value.message
    with pytest.raises(UnknownProfileError, match="known: none"):
        catalog.link("lte")


def test_the_catalog_reference_in_docs_is_generated_from_the_schema():
    from tierml.catalog.reference import catalog_reference

    docs = Path(__file__).parents[2] / "docs" / "catalog.md"
    assert docs.read_text() == catalog_reference(), (
        "docs/catalog.md is stale: python -m tierml.catalog.reference > docs/catalog.md"
    )
    for section, fields in FIELDS.items():
        for key, f in fields.items():
            assert f.doc, f"document [{section}] {key}"


def test_the_documented_example_is_a_valid_catalog():
    from tierml.catalog.reference import INTRO

    example = INTRO.split("```toml\n")[1].split("```")[0]
    board = catalog_from_texts([("example", example)]).tier("my-board")
    assert board.throughput.conv_gflops == pytest.approx(2 * 4.09e3 / 1340, rel=0.01)
