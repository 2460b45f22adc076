"""Energy per request on a battery device, and what a FaaS invocation costs."""

from __future__ import annotations

import pytest

from tierml.core.tiers import (
    FaasProfile,
    LinkProfile,
    RadioProfile,
    Throughput,
    TierKind,
    TierProfile,
)
from tierml.plan.energy import request_energy

PHONE = TierProfile(
    name="phone",
    kind=TierKind.DEVICE,
    description="test phone",
    cores=8,
    memory_mb=6144,
    throughput=Throughput(20.0, 10.0, 8.0),
    power_active_w=3.0,
    power_idle_w=0.5,
    battery=True,
    trusted=True,
)
# Huang et al. (MobiSys 2012) LTE coefficients: α_u 438.39, α_d 51.97 mW/Mbps, β 1288.04 mW.
LTE = RadioProfile("lte", "LTE", 438.39, 51.97, 1288.04, tail_ms=11576.0, tail_mw=1060.0)
LINK = LinkProfile("lte", "LTE", uplink_mbps=5.85, downlink_mbps=12.74, rtt_ms=70.0, loss=0.0)


def test_compute_only_is_power_times_time():
    e = request_energy(PHONE, compute_ms=40.0)
    assert e.compute_mj == pytest.approx(120.0)  # 3 W × 40 ms
    assert e.radio_mj == 0.0 and e.total_mj == pytest.approx(120.0)


def test_radio_energy_follows_the_power_model():
    nbytes = 150_528  # a 224×224×3 uint8 image
    args = {"uplink_bytes": nbytes, "downlink_bytes": 4000, "link": LINK, "radio": LTE}
    stream = request_energy(PHONE, compute_ms=0.0, **args)
    e = request_energy(PHONE, compute_ms=0.0, sporadic=True, **args)
    seconds_up = nbytes * 8 / 5.85e6
    seconds_down = 4000 * 8 / 12.74e6
    # P·t with P = α·t_mbps + β, over the time each direction takes, plus the tail.
    expected = (438.39 * 5.85 + 1288.04) * seconds_up + (51.97 * 12.74 + 1288.04) * seconds_down
    assert stream.radio_mj == pytest.approx(expected)
    # A request on its own also keeps the radio in its tail state for 11.576 s at 1060 mW.
    assert e.radio_mj == pytest.approx(expected + 1060.0 * 11.576)


def test_waiting_costs_idle_power_and_nothing_sent_costs_no_radio():
    e = request_energy(PHONE, compute_ms=10.0, link=LINK, radio=LTE, wait_ms=100.0)
    assert e.radio_mj == 0.0
    assert e.idle_mj == pytest.approx(50.0)
    assert e.total_mj == pytest.approx(80.0)


def test_radio_terms_need_a_radio():
    e = request_energy(PHONE, compute_ms=1.0, uplink_bytes=10**6, link=LINK, radio=None)
    assert e.radio_mj == 0.0


def test_link_transfer_time_is_half_rtt_plus_serialisation():
    assert LINK.transfer_ms(0) == pytest.approx(35.0)
    assert LINK.transfer_ms(1_000_000) == pytest.approx(35.0 + 8e6 / 5.85e6 * 1e3)
    assert LINK.transfer_ms(1_000_000, uplink=False) == pytest.approx(35.0 + 8e6 / 12.74e6 * 1e3)


def test_faas_cpu_share_and_bill():
    lam = FaasProfile(
        name="fn",
        provider="aws",
        description="x",
        usd_per_gb_s=0.0000166667,
        usd_per_request=0.0000002,
        memory_mb=(512, 1769, 10240),
        mb_per_vcpu=1769.0,
        max_vcpus=4,
        per_vcpu=Throughput(40.0, 20.0, 10.0),
        cold_start_ms=250.0,
    )
    assert lam.vcpus(1769) == pytest.approx(1.0)
    assert lam.vcpus(10240) == 4.0  # capped: 10240 MB would be 5.8 vCPUs
    assert lam.throughput(3538).conv_gflops == pytest.approx(80.0)
    # 1 GB for 100 ms: 0.1 GB-s, plus the request fee.
    assert lam.usd_per_invocation(1024, 100.0) == pytest.approx(0.1 * 0.0000166667 + 0.0000002)


def test_energy_of_a_tier_without_a_power_figure_is_a_catalog_error():
    from dataclasses import replace

    from tierml.core.errors import CatalogError

    with pytest.raises(CatalogError, match='Tier "phone" has no power_idle_w figure'):
        request_energy(replace(PHONE, power_idle_w=None), compute_ms=1.0, wait_ms=5.0)
