"""The catalog reference (docs/catalog.md), generated from the schema so it cannot drift.

python -m tierml.catalog.reference > docs/catalog.md
"""

from __future__ import annotations

from tierml.catalog.schema import FIELDS, FORMAT

TITLES = {
    "tier": "a device class, edge server or cloud VM type",
    "faas": "a serverless offering",
    "link": "a network between tiers",
    "radio": "a battery device's radio power model, P = α_u·t_u + α_d·t_d + β",
}
INTRO = f"""# Catalog reference

A catalog file is TOML. It starts with `format = "{FORMAT}"` and holds any of the sections
below, one table per profile: `[tier.NAME]`, `[faas.NAME]`, `[link.NAME]`, `[radio.NAME]`.
Names are lowercase letters, digits, `.`, `_` and `-` (quote a name with a dot:
`[tier."c6i.large"]`). Every numeric field given needs a string saying where the figure comes
from under the same key in the profile's `sources` table. Numbers are positive unless a
field says otherwise. Files are read from the package, then `$TIERML_HOME/catalog/*.toml`,
then `--catalog FILE`; `tierml catalog check FILE.toml` checks one. How the figures are used:
[profiling](profiling.md).

```toml
format = "{FORMAT}"

[tier.my-board]
kind = "device"
description = "my board, 4x Cortex-A53 @ 1.2 GHz, 1 GB"
cores = 4
memory_mb = 1024
conv_gflops = 6.1
gemm_gflops = 3.0
memory_gbps = 2.2
power_active_w = 4.1
battery = true

[tier.my-board.sources]
cores = "datasheet"
memory_mb = "datasheet"
conv_gflops = "2 x 4.09 GMAC / 1340 ms, ResNet-50 with tierml profile on the board"
gemm_gflops = "2 x 12.7 GMAC / 8470 ms, ViT-B/32 blocks, same"
memory_gbps = "STREAM copy, 4 threads"
power_active_w = "USB power meter under load"
```
"""


def catalog_reference() -> str:
    parts = [INTRO]
    for section, fields in FIELDS.items():
        parts.append(f"## `[{section}.NAME]`: {TITLES[section]}\n")
        parts.append("| field | type | required | meaning |\n|---|---|---|---|")
        for key, f in fields.items():
            required = "yes" if f.required else "no"
            parts.append(f"| `{key}` | {f.kind} | {required} | {f.doc} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(catalog_reference(), end="")
