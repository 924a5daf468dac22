"""Bronze: the live collector's hourly files (`make collect`) taken into the lake, one daily partition each.

Every hour file of the day (all stream kinds, dead letters and gap records) is copied byte for byte to
bronze/streams/<kind>/<day>/ in the lake, with a manifest row in bronze.files (dataset `stream:<kind>`, source
`collector`). The materialization reports what a person needs to trust the day: records per stream, hours
covered, gaps (count, total seconds) and dead letters, so a missing hour is visible, never silent.

A file the collector left cut short by a crash (its last gzip member unfinished) is salvaged (lib/collector/
salvage.py): its complete records count, and the cut (file, byte offset, line, reason, partial line) becomes a row
of the dead-letter table bronze.stream_dead_letters, the metadata's `truncations` and a warning check. Damage
inside a file fails the run, naming the file, byte and line.
"""


import hashlib
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.bronze.assets import MANIFEST_COLUMNS, MANIFEST_TABLE
from btc_assets.defs.resources.storage import LakeResource
from btc_assets.defs.resources.sources import StreamRecordingsResource, read_recording
from btc_assets.lib.data.collector.salvage import Truncation
from btc_assets.lib.storage.warehouse import ensure_table, replace_window

KINDS = ("kline_1m", "aggTrade", "depth20", "depth10", "markPrice", "forceOrder", "dead_letter", "gaps")
DEAD_LETTER_TABLE = "bronze.stream_dead_letters"
DEAD_LETTER_COLUMNS = {"period_start": "TIMESTAMP", "relpath": "VARCHAR", "source_url": "VARCHAR",
                       "byte_offset": "BIGINT", "line": "BIGINT", "reason": "VARCHAR", "raw": "VARCHAR",
                       "found_at": "TIMESTAMP"}


def _write_dead_letters(warehouse: DuckDBResource, day: str, cuts: list[tuple[str, str, Truncation]]) -> None:
    rows = pd.DataFrame([{"period_start": pd.Timestamp(day), "relpath": rel, "source_url": url,
                          "byte_offset": t.byte_offset, "line": t.line, "reason": t.reason, "raw": t.tail,
                          "found_at": pd.Timestamp.now(tz="UTC").tz_localize(None)} for rel, url, t in cuts],
                        columns=list(DEAD_LETTER_COLUMNS))
    with warehouse.get_connection() as conn:
        replace_window(conn, DEAD_LETTER_TABLE, DEAD_LETTER_COLUMNS, rows, "period_start", pd.Timestamp(day),
                       pd.Timestamp(day) + pd.Timedelta(days=1))


@dg.asset(
    key=["bronze", "stream_recordings"], group_name="bronze", partitions_def=partitions.daily,
    kinds={"binance", "file"},
    check_specs=[dg.AssetCheckSpec(
        "stream_recordings_not_truncated", asset=["bronze", "stream_recordings"],
        description="No hour file was cut short by a collector crash (a cut is salvaged and its lost tail is in "
                    "bronze.stream_dead_letters; a warning).")],
    description="The live collector's hourly WebSocket recordings (kline_1m, aggTrade, depth20@100ms, "
                "markPrice@1s, forceOrder) plus its gap records and dead letters, kept as written.",
)
def stream_recordings(context: dg.AssetExecutionContext, streams: StreamRecordingsResource, lake: LakeResource,
                      warehouse: DuckDBResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    day = context.partition_key
    counts: dict[str, int] = {}
    hours: set[str] = set()
    gaps: list[dict] = []
    rows, cuts = [], []
    for kind in KINDS:
        for path in streams.files(kind, day):
            content = path.read_bytes()
            got = read_recording(content, str(path))
            counts[kind] = counts.get(kind, 0) + len(got.records)
            gaps += [rec for _, rec in got.records] if kind == "gaps" else []
            if kind not in ("dead_letter", "gaps"):
                hours.add(path.name.rsplit("-", 1)[1][:2])
            relpath, url = f"bronze/streams/{kind}/{day}/{path.name}", path.resolve().as_uri()
            cuts += [(relpath, url, t) for t in got.truncations]
            if lake.uri(relpath) != url:  # the collector may write inside the lake already
                lake.write_bytes(relpath, content)
            rows.append({"dataset": f"stream:{kind}", "period_start": pd.Timestamp(day), "relpath": relpath,
                         "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content), "source": "collector",
                         "source_url": url,
                         "fetched_at": pd.Timestamp.now(tz="UTC").tz_localize(None)})
    if not rows:
        raise dg.Failure(f"bronze/stream_recordings {day}: no collector files under {streams.root} for {day}. "
                         "Run `make collect` (it records from now on: past days cannot be recorded), or point "
                         "BTC_STREAMS_DIR at where it wrote.")
    with warehouse.get_connection() as conn:
        ensure_table(conn, MANIFEST_TABLE, MANIFEST_COLUMNS)
        frame = pd.DataFrame(rows)
        conn.register("_stream_rows", frame)
        conn.execute("BEGIN TRANSACTION")
        conn.execute(f"DELETE FROM {MANIFEST_TABLE} WHERE dataset LIKE 'stream:%' AND period_start = ?",
                     [pd.Timestamp(day)])
        conn.execute(f"INSERT INTO {MANIFEST_TABLE} SELECT {', '.join(MANIFEST_COLUMNS)} FROM _stream_rows")
        conn.execute("COMMIT")
        conn.unregister("_stream_rows")
    _write_dead_letters(warehouse, day, cuts)
    if cuts:
        context.log.warning(f"{day}: {len(cuts)} hour files were cut short by a collector crash; their complete "
                            f"records are kept, the cut tails are in {DEAD_LETTER_TABLE}: "
                            + "; ".join(f"{rel} at byte {t.byte_offset}" for rel, _, t in cuts))
    missing = sorted({f"{h:02d}" for h in range(24)} - hours)
    if missing:
        context.log.warning(f"{day}: no recordings for hours {', '.join(missing)} UTC (collector not running)")
    gap_s = sum(g["end_ms"] - g["start_ms"] for g in gaps) / 1000
    cut_table = dg.MetadataValue.md("| file | byte offset | line | reason |\n|---|---|---|---|\n" + "\n".join(
        f"| {rel} | {t.byte_offset} | {t.line} | {t.reason} |" for rel, _, t in cuts[:50])) if cuts else "none"
    yield dg.MaterializeResult(metadata={
        "truncated_files": len(cuts), "truncations": cut_table,
        "files": len(rows), "records": dg.MetadataValue.json(counts), "hours_covered": len(hours),
        "hours_missing": ", ".join(missing) or "none", "gaps": len(gaps), "gap_seconds": round(gap_s, 3),
        "dead_letters": counts.get("dead_letter", 0), "collector_dir": streams.root,
        "gap_list": dg.MetadataValue.md("| from | to | reason |\n|---|---|---|\n" + "\n".join(
            f"| {pd.Timestamp(g['start_ms'], unit='ms')} | {pd.Timestamp(g['end_ms'], unit='ms')} | {g['reason']} |"
            for g in gaps[:50])) if gaps else "none",
    })
    yield dg.AssetCheckResult(check_name="stream_recordings_not_truncated", passed=not cuts,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"truncated_files": len(cuts), "truncations": cut_table},
                              description=None if not cuts else f"{len(cuts)} files cut by a crash: complete "
                              f"records kept, the cut tails are in {DEAD_LETTER_TABLE}")
