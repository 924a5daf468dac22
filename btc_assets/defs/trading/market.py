"""trading/live_bars: the closed bars the live sensor announced, and the market data the trader reads.

Archive and REST days land in silver.klines_1m; bars that closed minutes ago exist only in the collector's
recordings or on the REST API. `live_bars` copies the bars a run was asked to decide into live.klines_1m (same
columns as silver), and every read of the trading path takes silver first and live bars where silver has none, so
the higher timeframes (5m/15m/1h) are rebuilt from exactly the 1m bars the trader saw.
"""

import time
import weakref
from dataclasses import dataclass
from typing import NamedTuple

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from btc_assets.lib.research.features.pit import column_ns
from btc_assets.lib.research.features.window import EXTRA_SOURCES, HISTORY, RECENT_SPAN, load_bars
from btc_assets.defs.resources.sources import StreamRecordingsResource
from btc_assets.defs.resources.trading import LiveFeedResource
from btc_assets.lib.data import bars
from btc_assets.lib.trading import live_bars
from btc_assets.lib.research.backtest import signals_from_classes
from btc_assets.lib.data.collector.writer import hour_names
from btc_assets.lib.data.rest.client import PublicRest
from btc_assets.lib.storage.warehouse import frame_of, read_window, replace_window, table_exists

LIVE_TABLE = "live.klines_1m"
LIVE_TYPES = {"open_time": "TIMESTAMP", "open": "DOUBLE", "high": "DOUBLE", "low": "DOUBLE", "close": "DOUBLE",
              "volume": "DOUBLE", "quote_volume": "DOUBLE", "trades": "BIGINT", "taker_buy_volume": "DOUBLE",
              "taker_buy_quote_volume": "DOUBLE", "is_halt": "BOOLEAN"}
BARS_FROM, BARS_TO = "btc/bars_from", "btc/bars_to"
MINUTE = pd.Timedelta(minutes=1)


def tagged_bars(context) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    tags = context.run.tags
    if BARS_FROM not in tags:
        return None
    return pd.Timestamp(tags[BARS_FROM]), pd.Timestamp(tags[BARS_TO])


def _read_if_there(conn, table: str, time_column: str, start: pd.Timestamp, end: pd.Timestamp,
                   columns: list[str] | None = None, small: bool = False) -> pd.DataFrame | None:
    """read_window, or None when the table does not exist (one query, not an existence check and a read)."""
    try:
        return read_window(conn, table, time_column, start, end, columns, small=small)
    except LookupError:
        return None


def _live(conn, start: pd.Timestamp, end: pd.Timestamp, columns: list[str] | None = None,
          small: bool = False) -> pd.DataFrame | None:
    return _read_if_there(conn, LIVE_TABLE, "open_time", start, end, columns, small)


def _few_minutes(conn, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """one_minute for a few minutes in one query (silver's bars, then the live bars of the minutes silver lacks)."""
    cols = ", ".join(LIVE_TYPES)
    window = "open_time >= ? AND open_time < ?"
    bounds = [start.tz_convert("UTC").tz_localize(None), end.tz_convert("UTC").tz_localize(None)]
    try:
        res = conn.execute(
            f"SELECT {cols} FROM silver.klines_1m WHERE {window} UNION ALL SELECT {cols} FROM {LIVE_TABLE} WHERE "
            f"{window} AND open_time NOT IN (SELECT open_time FROM silver.klines_1m WHERE {window}) "
            "ORDER BY open_time", bounds * 3)
    except duckdb.CatalogException:  # no live table yet (or no silver): the general path says which
        return one_minute(conn, start, end, small=True)
    df = frame_of(res)
    df["open_time"] = pd.to_datetime(df["open_time"]).dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
    return df


_NEW_BARS: dict = {}  # the last few minutes' 1m bars read by the incremental paths, shared between them


def new_bars(conn, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """one_minute over the few minutes since a cached window's end: read once per bar and shared by the feature
    window (live_inputs) and the rules' bars (rules_inputs), which both extend by the same bars."""
    key = (database_of(conn), start, end)
    hit = _NEW_BARS.get(key)
    if hit is not None and time.time() - hit[0] < 5.0:
        return hit[1]
    df = _few_minutes(conn, start, end)
    _NEW_BARS.clear()
    _NEW_BARS[key] = (time.time(), df)
    return df


def _with_live(silver: pd.DataFrame, live: pd.DataFrame | None) -> pd.DataFrame:
    """Silver's 1m bars plus the live bars of the minutes silver does not have."""
    if live is None or live.empty:
        return silver
    live = live[~live["open_time"].isin(silver["open_time"])]
    if live.empty:
        return silver
    return pd.concat([silver, live[silver.columns]], ignore_index=True).sort_values("open_time", ignore_index=True)


def one_minute(conn, start: pd.Timestamp, end: pd.Timestamp, columns: list[str] | None = None,
               small: bool = False) -> pd.DataFrame:
    """1m bars in [start, end): silver, plus live bars for the minutes silver does not have (`small`: a few
    minutes, read_window's small read)."""
    return _with_live(read_window(conn, "silver.klines_1m", "open_time", start, end, columns, small=small),
                      _live(conn, start, end, columns, small))


def feature_inputs(conn, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """window.load_bars, with live bars added; when there are live bars in the window, 5m/15m/1h are built from the
    merged 1m bars (as silver builds them) instead of read from silver."""
    live = _live(conn, start, end)
    if live is None or live.empty:
        return load_bars(conn, start, end)
    one, higher = load_bars(conn, start, end, higher_timeframes=False)
    one = _with_live(one, live)
    for interval in _TF:
        higher[interval] = bars.resample_bars(one, interval)
    return one, higher


_TF = {"5m": pd.Timedelta(minutes=5), "15m": pd.Timedelta(minutes=15), "1h": pd.Timedelta(hours=1),
       "4h": pd.Timedelta(hours=4), "1d": pd.Timedelta(days=1)}


def recent_inputs(conn, first: pd.Timestamp, end: pd.Timestamp,
                  sources: set[str] | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.Timestamp]:
    """What window.recent_features needs for the bars opening in [first, end): each source from HISTORY[source]
    before `first` only (about a day of 1m bars, the 5m/15m/1h bars and the extra tables their features read), with
    live bars where silver has none. A higher timeframe is silver's bars, then the bars rebuilt from the merged 1m
    bars after silver's last one (as silver builds them). `sources`: the extra tables to read (None: all).
    Third value: the first 1m bar within RECENT_SPAN before `first` (warm-up counts from it)."""
    start = {name: first - h for name, h in HISTORY.items()}
    # a timeframe silver has no table for yet (4h/1d on an older warehouse) is rebuilt from the 1m bars alone
    higher = {tf: read_window(conn, f"silver.klines_{tf}", "open_time", start[f"klines_{tf}"], end)
              if table_exists(conn, f"silver.klines_{tf}") else pd.DataFrame(columns=["open_time"]) for tf in _TF}
    after = {tf: (df["open_time"].max() + _TF[tf]) if len(df) else start[f"klines_{tf}"] for tf, df in higher.items()}
    one_from = min(start["klines_1m"], *after.values())
    one = one_minute(conn, one_from, end)
    for tf, df in higher.items():
        if after[tf] < end and len(one) and one["open_time"].iloc[-1] >= after[tf]:
            tail = bars.resample_bars(one[one["open_time"] >= after[tf]], tf)
            higher[tf] = pd.concat([df, tail.reindex(columns=df.columns)], ignore_index=True) if len(df) else tail
    since = first - RECENT_SPAN
    begins = [pd.Timestamp(r[0], tz="UTC") for table in ("silver.klines_1m", LIVE_TABLE) if table_exists(conn, table)
              for r in conn.execute(f"SELECT min(open_time) FROM {table} WHERE open_time >= ? AND open_time < ?",
                                    [since.tz_localize(None), end.tz_localize(None)]).fetchall() if r[0] is not None]
    history_start = min(begins) if begins else first
    one = one[one["open_time"] >= start["klines_1m"]].reset_index(drop=True)
    out = {f"{tf}": df for tf, df in higher.items()}
    for src in EXTRA_SOURCES:
        if (sources is None or src.name in sources) and table_exists(conn, src.table):
            out[src.name] = read_window(conn, src.table, src.time_column, start[src.name] - src.delay, end)
    return one, out, history_start


@dataclass
class _Window:
    end: pd.Timestamp  # the inputs hold every bar opening before this
    one: pd.DataFrame
    higher: dict[str, pd.DataFrame]
    since: pd.Timestamp


_WINDOWS: dict[str, _Window] = {}  # by database: the trading worker's previous run's inputs (make trade's process)
_WINDOW_GAP = pd.Timedelta(minutes=10)  # a cached window older than this is read afresh


_DATABASE_OF: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # connection -> its file, asked once


def database_of(conn) -> str:
    """The warehouse file of the connection (the key of what the trading worker keeps between runs)."""
    try:
        return _DATABASE_OF[conn]
    except (KeyError, TypeError):
        pass
    path = str(conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
               .fetchone()[0])
    try:
        _DATABASE_OF[conn] = path
    except TypeError:  # not weakly referenceable: asked every time
        pass
    return path


def live_inputs(conn, first: pd.Timestamp, end: pd.Timestamp,
                sources: set[str] | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.Timestamp, bool]:
    """recent_inputs, updated incrementally between the runs of one process (the trading worker's): when the models
    read only the 1m-derived sources and the previous run's window ends at most a few minutes before `end`, only the
    bars since are read (silver, then live) and the 5m/15m/1h bars they touch rebuilt from the window's own 1m bars
    (as recent_inputs builds those after silver's last bar). Anything else reads the window afresh. Fourth value:
    whether the previous window was updated (True) or read afresh."""
    key = database_of(conn)
    c = _WINDOWS.get(key)
    updated = False
    if sources != set() or c is None or not (end - _WINDOW_GAP <= c.end <= end) or c.end <= first - HISTORY["klines_1m"]:
        one, higher, since = recent_inputs(conn, first, end, sources)
    else:
        new = new_bars(conn, c.end, end)
        expected = pd.date_range(c.end, end, freq="1min", inclusive="left")
        if len(new) != len(expected) or not (new["open_time"].to_numpy() == expected.to_numpy()).all():
            one, higher, since = recent_inputs(conn, first, end, sources)  # a gap: read it whole
        else:
            # by position on the time-ordered windows (this runs on every bar close): slices, no frame filtering
            one = pd.concat([c.one, new[c.one.columns]], ignore_index=True) if len(new) else c.one
            t1 = column_ns(one, "open_time")
            one = one.iloc[int(np.searchsorted(t1, (first - HISTORY["klines_1m"]).value)):]
            t1 = t1[len(t1) - len(one):]
            higher = dict(c.higher)
            for tf, step in _TF.items():
                # a 5m/15m/1h bar is used only once it has closed: rebuild the ones that closed since the last run
                kept = c.higher[tf]
                kt = column_ns(kept, "open_time")
                kept = kept.iloc[int(np.searchsorted(kt, (first - HISTORY[f"klines_{tf}"]).value)):]
                s = step.value
                lo = (c.end.value - s) // s * s  # the bars opening from (c.end - step) floored to the step
                closed = [t for t in range(lo, end.value - s + 1, s) if c.end.value < t + s <= end.value]
                rows = []
                for t in closed:
                    i, j = np.searchsorted(t1, [t, t + s])
                    if j > i:
                        rows.append(bars.one_bar(one.iloc[i:j], pd.Timestamp(t, tz="UTC")))
                if rows:
                    rows = pd.DataFrame(rows)
                    keep = int(np.searchsorted(column_ns(kept, "open_time"), column_ns(rows, "open_time")[0]))
                    kept = pd.concat([kept.iloc[:keep], rows.reindex(columns=kept.columns)], ignore_index=True)
                higher[tf] = kept
            since, updated = c.since, True
    if sources == set():
        _WINDOWS[key] = _Window(end, one, higher, since)
    return one, higher, since, updated


def rules_entries(signals: pd.Series, k: pd.DataFrame) -> pd.Series:
    """The class signals (SELL/HOLD/BUY by bar time) as the rules' entry signals on the bars `k` (0 where none;
    a signal at a time `k` does not have is not used). Aligned by position on the time-ordered bars (every bar
    close runs this over the session), not by a hash reindex."""
    times = pd.DatetimeIndex(k["open_time"])
    at = pd.DatetimeIndex(signals.index).as_unit("ns").asi8  # journaled times come back in microseconds
    if len(np.unique(at)) != len(at):
        raise ValueError("signals has duplicate bar times: one signal per bar")
    t = times.as_unit("ns").asi8
    if len(t) > 1 and not (t[1:] > t[:-1]).all():
        return signals_from_classes(signals).reindex(times).fillna(0).astype("int8")
    out = np.zeros(len(t), dtype=np.int8)
    pos = np.minimum(np.searchsorted(t, at), max(len(t) - 1, 0))
    ok = (t[pos] == at) if len(t) else np.zeros(len(at), bool)
    out[pos[ok]] = signals_from_classes(signals).to_numpy()[ok]
    return pd.Series(out, index=times)


class Regime(NamedTuple):
    entries: pd.Series  # the entries the regime filter keeps
    rules: dict  # the rules' extra arguments: the regime sizing's size_scale, when on
    filtered: dict  # what the filter did (lib/research/regime.py)
    sized: dict  # what the sizing did


def regime_rules(conn, k: pd.DataFrame, entries: pd.Series, regime_filter: str, regime_sizing: str) -> Regime:
    """The entries after the regime filter and the rules' arguments for the regime sizing on the bars `k`
    (lib/research/regime.py), on models/regime_forecast's forecasts from the sizing's reference days before the
    bars: what the backtest report, the live decisions and their parity check apply alike."""
    from btc_assets.lib.research.regime import REFERENCE, filter_entries, size_scale

    times = pd.DatetimeIndex(k["open_time"])
    forecasts = None
    if regime_filter != "none" or regime_sizing != "none":
        from btc_assets.defs.models.tft_model import read_forecasts

        forecasts = read_forecasts(conn, times.min().floor("D") - REFERENCE, times.max() + pd.Timedelta(days=1))
    kept, filtered = filter_entries(entries, forecasts, regime_filter)
    scale, sized = size_scale(times, forecasts, regime_sizing)
    return Regime(kept, {"size_scale": scale} if scale is not None else {}, filtered, sized)


RULES_BARS = ["open_time", "open", "high", "low", "close", "quote_volume"]
MARK_BARS = ["open_time", "open", "high", "low", "close"]


@dataclass
class _RulesWindow:
    start: pd.Timestamp
    end: pd.Timestamp  # the bars opening before this are held
    bars: pd.DataFrame
    mark: pd.DataFrame | None
    read_at: float  # when it was read whole (time.time())


_RULES: dict[str, _RulesWindow] = {}  # by database: the trading worker's session bars, extended bar by bar
RULES_REREAD_S = 3600.0  # read whole again at least this often (the archive's day replaces live bars)


def rules_inputs(conn, start: pd.Timestamp, end: pd.Timestamp):
    """Bars, funding and mark prices for the risk rules (the backtest's inputs) in [start, end).

    The session's bars are read whole once, then (in the trading worker's process) extended by the bars that
    closed since the previous run, without reading the session again; read whole again after a gap, a different
    session start, or RULES_REREAD_S. Funding is read every time (a settlement may be added for any past time)."""
    key = database_of(conn)
    c = _RULES.get(key)
    fresh = (c is not None and c.start == start and c.end <= end and end - c.end <= _WINDOW_GAP
             and time.time() - c.read_at < RULES_REREAD_S)
    if fresh and c.end < end:
        new = new_bars(conn, c.end, end)[RULES_BARS]
        expected = pd.date_range(c.end, end, freq="1min", inclusive="left")
        fresh = len(new) == len(expected) and bool((new["open_time"].to_numpy() == expected.to_numpy()).all())
        if fresh:
            bars_ = pd.concat([c.bars, new], ignore_index=True)
            mark = c.mark
            if mark is not None:
                more = read_window(conn, "silver.mark_price_1m", "open_time", c.end, end, MARK_BARS, small=True)
                mark = pd.concat([mark, more], ignore_index=True) if len(more) == len(new) else None
            c = _RULES[key] = _RulesWindow(start, end, bars_, mark, c.read_at)
    if not fresh:
        bars_ = one_minute(conn, start, end, RULES_BARS)
        mark = None
        if table_exists(conn, "silver.mark_price_1m"):
            mark = read_window(conn, "silver.mark_price_1m", "open_time", start, end, MARK_BARS)
            if len(mark) < len(bars_):  # the mark of live minutes is not recorded: use the traded price throughout
                mark = None
        c = _RULES[key] = _RulesWindow(start, end, bars_, mark, time.time())
    funding = _read_if_there(conn, "silver.funding_rates", "funding_time", start, end, ["funding_time", "rate"],
                             small=True)  # a settlement every 8 hours: a few rows
    return c.bars, funding, c.mark  # the window ends at `end` on every path above


LIVE_BARS = dg.AssetSpec(
    ["trading", "live_bars"],
    deps=[dg.AssetKey(["bronze", "stream_recordings"])],
    group_name="trading",
    kinds={"duckdb"},
    description="The closed 1m bars a live run decides, from the live feed (collector recordings, REST, or replayed "
    "silver), in live.klines_1m. A bar the sensor announced that the feed does not have fails the run, naming it.",
)


def take_live_bars(context: dg.AssetExecutionContext, conn, live_feed: LiveFeedResource,
                   streams: StreamRecordingsResource) -> dg.MaterializeResult:
    """trading/live_bars (computed in the trading_live step): the run's tagged bars from the feed into the live
    table."""
    key = LIVE_BARS.key
    wanted = tagged_bars(context)
    if wanted is None:
        return dg.MaterializeResult(asset_key=key, metadata={
            "bars": 0, "note": "no bars tagged: a manual run decides silver's bars"})
    lo, hi = wanted
    end = hi + MINUTE
    t0 = time.perf_counter()
    if live_feed.source == "replay":
        got = one_minute(conn, lo, end, ["open_time"])
        fetched = 0
    else:
        if live_feed.source == "collector":
            names = hour_names("kline_1m", int(lo.timestamp() * 1000), int(end.timestamp() * 1000))
            days = pd.date_range(lo.floor("D"), (end + MINUTE).floor("D"), freq="D")
            files = [f for d in days for f in streams.files("kline_1m", f"{d:%Y-%m-%d}") if f.name in names]
            got = live_bars.from_recordings(files, lo, end)
        else:
            rest = PublicRest(live_feed.rest_url)
            server_now = int(rest.get("/fapi/v1/time", {})["serverTime"])
            got = live_bars.from_rest(rest, live_feed.symbol, lo, end, server_now)
        fetched = len(got)
        if fetched:
            replace_window(conn, LIVE_TABLE, LIVE_TYPES, got, "open_time", got["open_time"].min(),
                           got["open_time"].max() + MINUTE)
    missing = sorted(set(pd.date_range(lo, hi, freq="1min")) - set(got["open_time"]))
    if missing:
        raise dg.Failure(f"the {live_feed.source} feed has no closed bar for {len(missing)} minute(s) of "
                         f"{lo}..{hi} (first {missing[0]}); check that the collector runs (make collect) or "
                         "that REST is reachable, then retry the run")
    return dg.MaterializeResult(asset_key=key, metadata={
        "bars": int(len(got)), "source": live_feed.source, "first_bar": str(lo), "last_bar": str(hi),
        "written_to_live_table": fetched, "seconds": round(time.perf_counter() - t0, 3)})
