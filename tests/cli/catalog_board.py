"""A user catalog for CLI tests: one device board (its speeds filled in by the test), an
LTE link and its radio model, every figure sourced "test"."""

BOARD = """
format = "tierml.catalog/1"

[tier.slow-board]
kind = "device"
description = "a slow device board"
cores = 1
memory_mb = 1024
conv_gflops = {conv}
gemm_gflops = {gemm}
memory_gbps = {memory}
power_active_w = 4.0
power_idle_w = 1.0
battery = true

[tier.slow-board.sources]
cores = "test"
memory_mb = "test"
conv_gflops = "test"
gemm_gflops = "test"
memory_gbps = "test"
power_active_w = "test"
power_idle_w = "test"

[link.test-lte]
description = "LTE uplink"
uplink_mbps = 5.85
downlink_mbps = 12.74
rtt_ms = 70.0
loss = 0.0
radio = "test-lte"

[link.test-lte.sources]
uplink_mbps = "test"
downlink_mbps = "test"
rtt_ms = "test"
loss = "test"

[radio.test-lte]
description = "LTE power model"
uplink_mw_per_mbps = 438.39
downlink_mw_per_mbps = 51.97
base_mw = 1288.04

[radio.test-lte.sources]
uplink_mw_per_mbps = "test"
downlink_mw_per_mbps = "test"
base_mw = "test"
"""
