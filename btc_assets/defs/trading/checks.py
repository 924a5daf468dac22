"""Live/backtest parity: the live path's decisions must equal what the backtest does over the same bars.

Both paths call the same feature code, the same model of the week and the same compiled rules, so any difference
is a bug (a look-ahead in batch, a stale model or missing history live). The check compares, over the trading
session: the signals and probabilities of every bar with the batch out-of-sample signals (models.signals), and the
entries (bar, side) and market exits (position, bar, reason) the live path planned with those of the backtest
engine run over the session's bars with the batch signals. Fills are not compared: they are the broker's.
"""

import json

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.resources.trading import TradingResource
from btc_assets.defs.trading.specs import ORDERS
from btc_assets.lib.trading.session import SESSION_WARMUP, session_start
from btc_assets.defs.trading.market import regime_rules, rules_entries, rules_inputs
from btc_assets.lib.research.backtest import simulate
from btc_assets.lib.research.features import checks as feature_checks
from btc_assets.lib.research.features import serving
from btc_assets.lib.research.labels import HOLD
from btc_assets.lib.research.models import registry
from btc_assets.lib.trading.journal import LIVE_FEATURES
from btc_assets.lib.storage.warehouse import table_exists

PROBA_TOLERANCE = 1e-6
MINUTE = pd.Timedelta(minutes=1)


def could_not(why: str, **figures) -> dg.AssetCheckResult:
    """The check could not compare what it claims: said plainly, as a failed check at WARN severity (never a pass
    over zero bars)."""
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                               description=f"could not compare the live path with the backtest: {why}",
                               metadata={"bars_compared": 0, "why_not_compared": why, **figures})


def _live_plans(d: pd.DataFrame) -> tuple[set, set]:
    entries = {(t + MINUTE, 1 if a.endswith("long") else -1) for t, a in zip(d["bar_time"], d["action"])
               if isinstance(a, str) and "enter_" in a}
    exits = set()
    for t, raw in zip(d["bar_time"], d["exits"]):
        for e in json.loads(raw) if isinstance(raw, str) else []:
            exits.add((pd.Timestamp(e["entry_time"]), t + MINUTE, e["reason"]))
    return entries, exits


@dg.asset_check(asset=["trading", "decisions"], description=__doc__.split("\n\n")[0],
                additional_deps=[ORDERS.key])  # in a live run it runs once the bar's orders are out
def decisions_match_backtest(warehouse: DuckDBResource, trading: TradingResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as conn:
        if not table_exists(conn, "trading.decisions"):
            return could_not("nothing decided yet")
        # no batch signal at all yet: an empty one, so that the bars are judged as such below
        signals = ("models.signals" if table_exists(conn, "models.signals") else
                   "(SELECT NULL::TIMESTAMP AS open_time, NULL::TINYINT AS signal, NULL::DOUBLE AS p_buy, "
                   "NULL::VARCHAR AS model_version WHERE false)")
        first = conn.execute("SELECT min(bar_time) FROM trading.decisions").fetchone()[0]
        if first is None:
            return could_not("nothing decided yet")
        session = session_start(conn, trading.session_start, pd.Timestamp(first, tz="UTC"))
        live = conn.execute(
            "SELECT d.bar_time, d.signal AS live_signal, d.p_buy AS live_p_buy, d.action, d.exits, "
            "s.signal AS batch_signal, s.p_buy AS batch_p_buy, d.model_version = s.model_version AS same_model, "
            "d.model_version AS live_model "
            f"FROM trading.decisions d LEFT JOIN {signals} s ON s.open_time = d.bar_time "
            "WHERE d.bar_time >= ? ORDER BY d.bar_time", [session.tz_localize(None)]).df()
        live["bar_time"] = pd.to_datetime(live["bar_time"]).dt.tz_localize("UTC")
        last = live["bar_time"].max()
        k, funding, mark = rules_inputs(conn, session - SESSION_WARMUP, last + MINUTE)
    # A bar without a promoted model has no batch signal either: both paths decide "no entry" (HOLD) there.
    no_model = live["live_model"].astype(str).str.startswith("none:") & live["batch_signal"].isna()
    live.loc[no_model, "batch_signal"] = HOLD
    live.loc[no_model, "batch_p_buy"] = live.loc[no_model, "live_p_buy"]
    comparable = live["same_model"].fillna(False).astype(bool) | no_model
    if not comparable.all():  # retrained since, or no batch signal for a bar: the plans cannot be compared
        missing = live.loc[~comparable, "bar_time"]
        return could_not(
            f"{len(missing)} of {len(live)} decided bars have no batch signal of the same model version (the model "
            f"was retrained since, or models/signals is not materialized for them yet: it runs once the archive has "
            f"the day); first {missing.min()}, last {missing.max()}: materialize models/signals for those days, or "
            "start a new session", bars_without_batch_signal=len(missing))
    differ = live[(live["live_signal"] != live["batch_signal"])
                  | ((live["live_p_buy"] - live["batch_p_buy"]).abs() > PROBA_TOLERANCE)]
    batch = pd.Series(live["batch_signal"].to_numpy(), index=pd.DatetimeIndex(live["bar_time"]))
    with warehouse.get_connection() as conn:  # the batch signals through the live path's regime filter and sizing
        regime = regime_rules(conn, k, rules_entries(batch, k), trading.regime_filter, trading.regime_sizing)
    res = simulate(k, regime.entries, funding, mark=mark, **trading.rules(), **regime.rules)
    tr = res.trades
    bt_entries = {(t, 1 if s == "long" else -1) for t, s in zip(tr["entry_time"], tr["side"]) if t <= last + MINUTE}
    mk = tr[tr["exit_reason"].isin(["time", "signal"]) & ~tr["is_open"]]
    bt_exits = {(e, x, str(r)) for e, x, r in zip(mk["entry_time"], mk["exit_time"], mk["exit_reason"])}
    live_entries, live_exits = _live_plans(live)
    # an entry decided at the last bar fills after the backtest's last bar: the backtest cannot show it yet
    live_entries = {e for e in live_entries if e[0] <= k["open_time"].max()}
    refused = res.skipped["too_small"] + res.skipped["liquidation_guard"]
    entries_only_live = live_entries - bt_entries
    ok = differ.empty and bt_entries <= live_entries and len(entries_only_live) <= refused and live_exits == bt_exits
    return dg.AssetCheckResult(
        passed=ok,
        metadata={
            "bars_compared": len(live), "session_start": str(session),
            "signals_differing": len(differ),
            "max_p_buy_difference": float((live["live_p_buy"] - live["batch_p_buy"]).abs().max()),
            "entries_live": len(live_entries), "entries_backtest": len(bt_entries),
            "entries_only_live": sorted(str(e[0]) for e in entries_only_live)[:10],
            "entries_only_backtest": sorted(str(e[0]) for e in bt_entries - live_entries)[:10],
            "entries_refused_at_fill_by_backtest": refused,
            "market_exits_live": len(live_exits), "market_exits_backtest": len(bt_exits),
            "first_signal_differences": [str(t) for t in differ["bar_time"].head(10)],
        },
        description=None if ok else "the live path drifted from the backtest: compare the features and plans of "
        "the bars listed",
    )


FEATURE_CHECK_DAYS = 3  # the live minutes compared per run: the last days decided (gold has them a day later)


def compared_features(conn, versions: set[str]) -> tuple[list[str], list[str]]:
    """The features to compare: every servable one, and every feature a deciding model reads (a model trained on
    features="all" reads some the live path cannot serve: they are compared too, and named when they differ).
    Second value: the deciding versions whose feature list the registries do not state."""
    names = list(serving.servable())
    unknown = []
    for v in versions:
        if v.startswith("none:"):
            continue
        reg, _, ver = v.split(" ")[0].partition("/")
        found = []
        for family in ("xgb", "lstm", "transformer", "ensemble"):
            table = registry.registry_table(family)
            if table_exists(conn, table) and "features" in {c[0] for c in conn.execute(f"DESCRIBE {table}").fetchall()}:
                found += conn.execute(f"SELECT features FROM {table} WHERE registered_name = ? AND model_version = ?",
                                      [reg, ver]).fetchall()
        lists = [r[0] for r in found if r[0]]
        if not lists:
            unknown.append(v)
        for text in lists:
            names += [n for n in text.split(",") if n not in names]
    return names, unknown


@dg.asset_check(asset=["trading", "decisions"], additional_deps=[ORDERS.key],
                description="Every minute the live path decided, once gold has it: the features the decision was "
                "made on (trading.live_features) equal the batch features recomputed from the archive "
                "(gold.features) within float tolerance; a differing feature is named with its minutes. The "
                "minutes gold does not have yet are counted and said, never passed over.")
def live_features_match_batch(warehouse: DuckDBResource) -> dg.AssetCheckResult:
    def cannot(why: str, **figures) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"could not compare the live features with batch: {why}",
                                   metadata={"minutes_compared": 0, "why_not_compared": why, **figures})

    with warehouse.get_connection() as conn:
        if not table_exists(conn, LIVE_FEATURES):
            return cannot("no live decision recorded its features yet")
        last = conn.execute(f"SELECT max(bar_time) FROM {LIVE_FEATURES}").fetchone()[0]
        if last is None:
            return cannot("no live decision recorded its features yet")
        since = pd.Timestamp(last) - pd.Timedelta(days=FEATURE_CHECK_DAYS)
        live = conn.execute(f"SELECT * FROM {LIVE_FEATURES} WHERE bar_time >= ? ORDER BY bar_time", [since]).df()
        versions = {r[0] for r in conn.execute("SELECT DISTINCT model_version FROM trading.decisions "
                                               "WHERE bar_time >= ?", [since]).fetchall()}
        names, unknown = compared_features(conn, versions)
        names = [n for n in names if n in live.columns]
        if not table_exists(conn, "gold.features"):
            return cannot("gold/features is not materialized", minutes_not_in_gold_yet=len(live))
        batch = conn.execute(
            f"SELECT open_time, {', '.join(chr(34) + n + chr(34) for n in names)} FROM gold.features "
            "WHERE open_time >= ? AND open_time <= ? ORDER BY open_time", [live["bar_time"].min(), last]).df()
    both = live.merge(batch, left_on="bar_time", right_on="open_time", suffixes=("", "__batch"))
    waiting = len(live) - len(both)
    if both.empty:
        return cannot(f"gold/features has none of the {len(live)} minutes decided since {since:%Y-%m-%d %H:%M} yet "
                      "(it runs once the archive has the day)", minutes_not_in_gold_yet=waiting)
    a = both[names].to_numpy("float64")
    b = both[[f"{n}__batch" for n in names]].to_numpy("float64")
    bad = ~np.isclose(a, b, equal_nan=True, **feature_checks.TOLERANCE)
    per_feature = {names[j]: int(c) for j, c in enumerate(bad.sum(axis=0)) if c}
    first = [f"{names[j]} at {both['bar_time'].iloc[i]}: live {a[i, j]!r}, batch {b[i, j]!r}"
             for i, j in zip(*np.nonzero(bad))][:20]
    unservable = serving.unservable()
    return dg.AssetCheckResult(
        passed=not per_feature,
        metadata={"minutes_compared": len(both), "minutes_not_in_gold_yet": waiting, "features_compared": len(names),
                  "features_differing": per_feature, "first_differences": first,
                  "versions_without_feature_list": sorted(unknown), "tolerance": str(feature_checks.TOLERANCE)},
        description=None if not per_feature else (
            f"the live path traded on features that differ from batch: {', '.join(list(per_feature)[:8])}"
            + ("; not servable live (their sources arrive with the next day's archive): "
               + ", ".join(n for n in per_feature if n in unservable) if set(per_feature) & set(unservable) else "")
            + "; retrain with features=live, or fix the live inputs of the features named"),
    )
