"""CLI: `python -m btc_assets.lib.data.synthetic [--archive DIR] [--day YYYY-MM-DD ...] [--divisor N]`."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
from pathlib import Path

from btc_assets.lib.data.synthetic.generate import SAMPLE_DIVISOR, generate, write_manifest

SAMPLE = Path(__file__).resolve().parents[3] / "sample_data" / "archive"
README = Path(__file__).with_name("SYNTHETIC.md")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write the synthetic datasets of the bundled sample archive.")
    ap.add_argument("--archive", type=Path, default=SAMPLE, help="archive mirror holding the real 1m klines")
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--day", action="append", type=dt.date.fromisoformat, help="only these days (repeatable)")
    ap.add_argument("--divisor", type=int, default=SAMPLE_DIVISOR, help="real trades per synthetic aggTrade")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    entries = generate(args.archive, args.symbol, set(args.day) if args.day else None, args.divisor)
    if not args.day:
        write_manifest(args.archive, entries, args.divisor)
        shutil.copyfile(README, args.archive / "SYNTHETIC.md")
    total = sum(int(e["bytes"]) for e in entries)
    print(f"wrote {len(entries)} synthetic files ({total / 1e6:.1f} MB) under {args.archive}")


if __name__ == "__main__":
    main()
