"""Writes docs/FEATURES.md from the registry: `python -m btc_assets.lib.research.features.docs [--check]`.

--check exits 1 when the committed file differs from the registry (for CI), without writing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from btc_assets.lib.research.features import pit
from btc_assets.lib.research.features.registry import FAMILIES, FEATURES, ROW_WARMUP_BARS_1M, WARMUP_BARS_1M

TARGET = Path(__file__).resolve().parents[4] / "docs" / "FEATURES.md"
# What the bundled 60-day sample holds per source (klines and funding are real; the market-data issue adds
# synthetic archive files for the others, see btc_assets/sample_data/archive/SYNTHETIC.md).
SAMPLE = {"liquidations": "absent (live stream only): features null",
          "funding_rates": "real monthly files"}
SYNTHETIC = "synthetic files; null until its silver table is materialized"


def render() -> str:
    """The whole markdown page."""
    counts = {fam: sum(f.family == fam for f in FEATURES) for fam in FAMILIES}
    lines = [
        "# Gold features",
        "",
        "Generated from `btc_assets/lib/research/features/` by `python -m btc_assets.lib.research.features.docs`; do not edit by hand.",
        "",
        f"{len(FEATURES)} features in {len(FAMILIES)} families: "
        + ", ".join(f"{fam} {n}" for fam, n in counts.items()) + ".",
        "",
        "Every value is point in time: a 1m row with open time t is known at t + 1m and uses only source rows",
        "available by then (as-of join on availability time). Before its warm-up a feature is null, never an",
        f"unconverged number. gold/features reads {WARMUP_BARS_1M} 1m bars ({WARMUP_BARS_1M / 1440:.1f} days) before",
        f"each partition; `warmed_up` marks rows with {ROW_WARMUP_BARS_1M // 1440} days of history.",
        "",
        "## Sources and availability",
        "",
        "| source | table | time column | available | on the bundled sample |",
        "|---|---|---|---|---|",
        *(f"| {s.name} | `{s.table}` | `{s.time_column}` | {s.rule} | "
          f"{SAMPLE.get(s.name, 'real' if s.name.startswith('klines_') else SYNTHETIC)} |"
          for s in pit.SOURCES.values()),
        "",
        "## Features",
        "",
        "| name | family | inputs | warm-up (1m bars) | available | description | may be null when |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in FEATURES:
        lines.append(f"| `{f.name}` | {f.family} | {', '.join(f.inputs)} | {f.warmup_bars_1m} | {f.available} | "
                     f"{f.description} | {f.nullable or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run python -m btc_assets.lib.research.features.docs", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET} ({len(FEATURES)} features)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
