"""Emulated links: the delay formula, determinism by seed, loss, bad figures."""

from __future__ import annotations

import time

import pytest

from tierml.core.errors import LinkSpecError
from tierml.runtime.link_shaping import MSS_BYTES, LinkShape, ShapedLink


def test_delay_is_half_rtt_plus_serialisation():
    link = ShapedLink(LinkShape(8.0, 80.0, rtt_ms=20.0))
    # 1 MB at 8 Mbit/s = 1000 ms, plus 10 ms: half the RTT.
    assert link.one_way_s(1_000_000, up=True) == pytest.approx(1.010)
    assert link.one_way_s(1_000_000, up=False) == pytest.approx(0.110)


def test_the_same_seed_gives_the_same_jitter_and_loss():
    shape = LinkShape(10.0, 10.0, rtt_ms=30.0, jitter_ms=5.0, loss=0.05)
    a = [ShapedLink(shape, seed=3).one_way_s(50 * MSS_BYTES, up=True) for _ in range(1)]
    first = ShapedLink(shape, seed=3)
    second = ShapedLink(shape, seed=3)
    xs = [first.one_way_s(50 * MSS_BYTES, up=True) for _ in range(20)]
    ys = [second.one_way_s(50 * MSS_BYTES, up=True) for _ in range(20)]
    assert xs == ys and xs[0] == a[0]
    lossless = ShapedLink(LinkShape(10.0, 10.0, rtt_ms=30.0, jitter_ms=5.0), seed=3)
    # Each lost segment costs an RTT: with 5% of 50 segments lost, the mean grows.
    zs = [lossless.one_way_s(50 * MSS_BYTES, up=True) for _ in range(20)]
    assert sum(xs) > sum(zs)


def test_send_really_waits_and_bandwidth_changes_mid_run():
    link = ShapedLink(LinkShape(100.0, 100.0, rtt_ms=10.0))
    start = time.perf_counter()
    waited = link.send(125_000)  # 10 ms at 100 Mbit/s + 5 ms
    assert time.perf_counter() - start >= waited == pytest.approx(0.015)
    link.set_bandwidth(10.0)
    assert link.one_way_s(125_000, up=True) == pytest.approx(0.105)


@pytest.mark.parametrize("bad", [dict(uplink_mbps=0), dict(loss=1.0), dict(rtt_ms=-1)])
def test_bad_link_figures_are_one_typed_error(bad):
    figures = {"uplink_mbps": 1.0, "downlink_mbps": 1.0, **bad}
    with pytest.raises(LinkSpecError, match=next(iter(bad))):
        LinkShape(**figures)
