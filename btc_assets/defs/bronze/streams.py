"""Bronze: the live collector's hourly files (`make collect`) taken into the lake, one daily partition each.

Every hour file of the day (all stream kinds, dead letters and gap records) is copied byte for byte to
bronze/streams/<kind>/<day>/ in the lake, with a manifest row in bronze.files (dataset `stream:<kind>`, source
`collector`). The materialization reports what a person needs to trust the day: records per stream, hours
covered, gaps (count, total seconds) and dead letters, so a missing hour is visible, never silent.
"""


import gzip
import hashlib
import io
import json

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.bronze.assets import MANIFEST_COLUMNS, MANIFEST_TABLE
from btc_assets.defs.resources import LakeResource
from btc_assets.defs.rest_resources import StreamRecordingsResource
from btc_assets.lib.warehouse import ensure_table

KINDS = ("kline_1m", "aggTrade", "depth20", "depth10", "markPrice", "forceOrder", "dead_letter", "gaps")


def count_lines(content: bytes, where: str) -> tuple[int, list[dict]]:
    """Lines of a gzip JSON-lines file, and the records themselves for gap files; a truncated last member (the
    collector was killed mid-write) raises with the file named."""
    try:
        text = gzip.GzipFile(fileobj=io.BytesIO(content)).read().decode()
    except (EOFError, OSError) as e:
        raise dg.Failure(f"{where}: unreadable gzip ({e}); the collector was probably killed mid-write. Move the "
                         "file aside (its complete lines can be recovered with `zcat`) and rematerialize.") from e
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return len(lines), [json.loads(ln) for ln in lines] if "gaps-" in where else []


@dg.asset(
    key=["bronze", "stream_recordings"], group_name="bronze", partitions_def=partitions.daily, pool="duckdb",
    kinds={"binance", "file"},
    description="The live collector's hourly WebSocket recordings (kline_1m, aggTrade, depth20@100ms, "
                "markPrice@1s, forceOrder) plus its gap records and dead letters, kept as written.",
)
def stream_recordings(context: dg.AssetExecutionContext, streams: StreamRecordingsResource, lake: LakeResource,
                      warehouse: DuckDBResource) -> dg.MaterializeResult:
    day = context.partition_key
    counts: dict[str, int] = {}
    hours: set[str] = set()
    gaps: list[dict] = []
    rows = []
    for kind in KINDS:
        for path in streams.files(kind, day):
            content = path.read_bytes()
            n, recs = count_lines(content, str(path))
            counts[kind] = counts.get(kind, 0) + n
            gaps += recs
            if kind not in ("dead_letter", "gaps"):
                hours.add(path.name.rsplit("-", 1)[1][:2])
            relpath = f"bronze/streams/{kind}/{day}/{path.name}"
            if lake.uri(relpath) != path.resolve().as_uri():  # the collector may write inside the lake already
                lake.write_bytes(relpath, content)
            rows.append({"dataset": f"stream:{kind}", "period_start": pd.Timestamp(day), "relpath": relpath,
                         "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content), "source": "collector",
                         "source_url": path.resolve().as_uri(),
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
    missing = sorted({f"{h:02d}" for h in range(24)} - hours)
    if missing:
        context.log.warning(f"{day}: no recordings for hours {', '.join(missing)} UTC (collector not running)")
    gap_s = sum(g["end_ms"] - g["start_ms"] for g in gaps) / 1000
    return dg.MaterializeResult(metadata={
        "files": len(rows), "records": dg.MetadataValue.json(counts), "hours_covered": len(hours),
        "hours_missing": ", ".join(missing) or "none", "gaps": len(gaps), "gap_seconds": round(gap_s, 3),
        "dead_letters": counts.get("dead_letter", 0), "collector_dir": streams.root,
        "gap_list": dg.MetadataValue.md("| from | to | reason |\n|---|---|---|\n" + "\n".join(
            f"| {pd.Timestamp(g['start_ms'], unit='ms')} | {pd.Timestamp(g['end_ms'], unit='ms')} | {g['reason']} |"
            for g in gaps[:50])) if gaps else "none",
    })
