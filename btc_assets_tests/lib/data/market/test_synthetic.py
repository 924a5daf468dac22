"""The generator: exact reproduction of real klines, contiguous ids, determinism, synthetic markers."""

import datetime as dt
import hashlib
import io
import json
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.data.archive.layouts import AGG_TRADES, BOOK_DEPTH, KLINES, METRICS
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.data.synthetic import is_synthetic_zip
from btc_assets.lib.data.synthetic.agg_trades import IdState, SyntheticDataError, agg_trades_for_klines
from btc_assets.lib.data.synthetic.archive_writer import agg_trades_csv, zip_bytes
from btc_assets.lib.data.synthetic.generate import generate, sample_density
from btc_assets_tests.conftest import KLINES_DIR, SAMPLE, real_klines

DAY = dt.date(2024, 1, 2)


def rebuild(trades: pd.DataFrame) -> pd.DataFrame:
    minute = trades["transact_time"] // 60_000 if trades["transact_time"].dtype.kind == "i" else \
        trades["transact_time"].dt.floor("1min")
    g = trades.assign(m=minute, buy=np.where(trades["is_buyer_maker"], 0.0, trades["quantity"]),
                      n=trades["last_trade_id"] - trades["first_trade_id"] + 1).groupby("m")
    return g.agg(open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
                 volume=("quantity", "sum"), taker_buy_volume=("buy", "sum"), count=("n", "sum"))


@pytest.mark.parametrize("divisor", [300, 30])
def test_generated_agg_trades_reproduce_the_real_klines(divisor):
    k = real_klines(DAY)
    trades, nxt = agg_trades_for_klines(k, IdState(100, 5000), seed=1, per_minute=sample_density(divisor))
    got = rebuild(trades)
    want = k.set_index(k["open_time"].astype("int64") // 60_000_000_000)
    for col in ("open", "high", "low", "close", "volume", "taker_buy_volume"):
        np.testing.assert_allclose(got[col], want[col], rtol=0, atol=1e-6, err_msg=col)
    assert (got["count"] == want["count"]).all()
    assert (np.diff(trades["agg_trade_id"]) == 1).all()
    assert (trades["first_trade_id"].iloc[1:].to_numpy() == trades["last_trade_id"].iloc[:-1].to_numpy() + 1).all()
    assert nxt == IdState(100 + len(trades), 5000 + int(k["count"].sum()))
    assert (trades["quantity"] >= 0.001 - 1e-12).all() and trades["transact_time"].is_monotonic_increasing


def kline_rows(rows):
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    df = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume", "taker_buy_volume", "count"])
    df.insert(0, "open_time", [t0 + pd.Timedelta(minutes=i) for i in range(len(df))])
    return df


def test_minutes_with_few_trades_and_halts_are_reproduced():
    k = kline_rows([(100.0, 100.0, 100.0, 100.0, 0.001, 0.001, 1),  # one trade
                    (100.0, 101.0, 100.0, 101.0, 0.002, 0.001, 2),  # two trades, both sides
                    (100.0, 102.0, 100.0, 100.0, 0.005, 0.0, 3),   # the high only in the middle trade
                    (100.0, 100.0, 100.0, 100.0, 0.0, 0.0, 0),    # halt: no trades
                    (100.0, 103.0, 99.0, 101.0, 1.0, 0.4, 500)])
    trades, _ = agg_trades_for_klines(k, IdState(1, 1), seed=3, per_minute=sample_density(300))
    got = rebuild(trades)
    want = k[k["count"] > 0].set_index(k.loc[k["count"] > 0, "open_time"].astype("int64") // 60_000_000_000)
    pd.testing.assert_frame_equal(got[["open", "high", "low", "close", "count"]],
                                  want[["open", "high", "low", "close", "count"]], check_names=False,
                                  check_dtype=False)


def test_impossible_klines_are_refused():
    with pytest.raises(SyntheticDataError, match="cannot be reproduced"):
        agg_trades_for_klines(kline_rows([(1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0)]), IdState(1, 1), 0, sample_density(1))


def test_written_files_parse_with_the_archive_reader_and_are_marked_synthetic():
    trades, _ = agg_trades_for_klines(real_klines(DAY), IdState(1, 1), 1, sample_density(300))
    z = zip_bytes("BTCUSDT-aggTrades-2024-01-02.csv", agg_trades_csv(trades), DAY)
    assert is_synthetic_zip(z) and z == zip_bytes("BTCUSDT-aggTrades-2024-01-02.csv", agg_trades_csv(trades), DAY)
    back = read_archive_csv(z, "BTCUSDT-aggTrades-2024-01-02.zip", AGG_TRADES)
    assert len(back) == len(trades) and (back["agg_trade_id"].to_numpy() == trades["agg_trade_id"].to_numpy()).all()
    assert not is_synthetic_zip((KLINES_DIR / "BTCUSDT-1m-2024-01-02.zip").read_bytes())


def test_bundled_sample_is_the_generators_output(tmp_path):
    """Regenerating the first two days from their real klines gives byte-identical files (the manifest's sha256)."""
    rel = KLINES_DIR.relative_to(SAMPLE)
    (tmp_path / rel).mkdir(parents=True)
    for d in ("01", "02"):
        shutil.copy(KLINES_DIR / f"BTCUSDT-1m-2024-01-{d}.zip", tmp_path / rel)
    entries = generate(tmp_path)
    manifest = {e["relpath"]: e for e in json.loads((SAMPLE / "synthetic_manifest.json").read_text())["files"]}
    assert len(entries) == 12
    for e in entries:
        assert manifest[e["relpath"]]["sha256"] == e["sha256"], e["relpath"]
        data = (SAMPLE / e["relpath"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"] and is_synthetic_zip(data)


def test_bundled_depth_and_metrics_have_the_archive_layout():
    base = SAMPLE / "data/futures/um/daily"
    depth_zip = (base / "bookDepth/BTCUSDT/BTCUSDT-bookDepth-2024-01-02.zip").read_bytes()
    depth = read_archive_csv(depth_zip, "d", BOOK_DEPTH)
    metrics = read_archive_csv((base / "metrics/BTCUSDT/BTCUSDT-metrics-2024-01-02.zip").read_bytes(), "m", METRICS)
    mark = read_archive_csv((base / "markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2024-01-02.zip").read_bytes(), "k", KLINES)
    assert len(depth) == 14_400 and set(depth["percentage"]) == {-5, -4, -3, -2, -1, 1, 2, 3, 4, 5}
    assert len(metrics) == 288 and not metrics["create_time"].is_monotonic_increasing  # unsorted, as real files
    assert len(mark) == 1440
    with zipfile.ZipFile(io.BytesIO((base / "metrics/BTCUSDT/BTCUSDT-metrics-2024-01-02.zip").read_bytes())) as zf:
        assert zf.infolist()[0].comment.startswith(b"SYNTHETIC")
