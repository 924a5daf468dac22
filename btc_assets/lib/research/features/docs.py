"""Writes docs/FEATURES.md from the registry: `python -m btc_assets.lib.research.features.docs [--check]`.

--check exits 1 when the committed file differs from the registry (for CI), without writing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from btc_assets.lib.research.features import audit, pit
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
        "## How the checks verify it (without trusting the table above)",
        "",
        "gold/features' blocking point-in-time checks never read the availability column above to decide what was",
        "known when. They measure it from the data (`lib/research/features/audit.py`): what each table's time",
        "column means is stated once, every number is measured from the rows.",
        "",
        "| source | time column means | measured availability |",
        "|---|---|---|",
        *(f"| {n} | {k} | " + {"period": "time + the table's own spacing (median step between keys)",
                                "instant": "its own time",
                                "metrics": "create_time + the window its taker ratio describes, matched with the 1m klines "
                                           "(5 minutes assumed when the match is not conclusive)"}[k] + " |"
          for n, (_, k) in audit.MEANING.items()),
        "",
        "- `features_availability_observed`: on every row of every source, the declared availability may not be",
        "  earlier than the measured one (a leak of that many minutes, named with the features reading the source).",
        "- `features_point_in_time`: features recomputed from the data cut at the measured times equal the stored",
        "  ones, just before and just after every 5m/15m/1h close of the partition (the features of those bars and",
        "  of metrics, in one batched run where a row just before a close sees those sources 30 s later and a row",
        "  just after 30 s earlier, which is exactly the data cut at each such row's close: checked per row), and at",
        "  a sampled cut-off of every day, where every family is recomputed from the physically cut tables (in two runs:",
        f"  the families needing at most {audit.SHORT_GRID} 1m bars on a grid as long as they need, the others on the "
        "longest 1m warm-up).",
        "  Their cost is measured by `make bench` (`bench_features`: seconds per daily partition and the share of the",
        "  partition's own feature computation, target under 20 %).",
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
