"""The fake exchange's market-data endpoints decode into the official client's typed models (so their shapes are
Binance's): aggTrades, fundingRate, premiumIndex, mark/index/premium klines and the /futures/data statistics
(openInterestHist, top-trader and global long/short ratios, taker buy/sell volume), which like Binance's serve
the last 30 days only."""

from __future__ import annotations

import time

import pytest
from binance_common.errors import BadRequestError
from binance_common.configuration import ConfigurationRestAPI
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures)

from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.replay import synthetic_bars

T0 = 1_704_067_200_000


@pytest.fixture(scope="module")
def api():
    with run_in_thread(synthetic_bars(600, t0_ms=T0), "k", "s") as fx:
        fx.exchange.cursor = 599
        fx.exchange.clock_skew_ms = T0 + 600 * 60_000 - int(time.time() * 1000)  # the statistics' 30 days
        yield DerivativesTradingUsdsFutures(config_rest_api=ConfigurationRestAPI(
            base_path=fx.rest_url, timeout=2000, retries=0)).rest_api


def test_typed_market_endpoints(api):
    trades = api.compressed_aggregate_trades_list(symbol="BTCUSDT", from_id=10, limit=5).data()
    assert [t.a for t in trades] == [10, 11, 12, 13, 14] and isinstance(trades[0].m, bool)
    funding = api.get_funding_rate_history(symbol="BTCUSDT", start_time=T0, limit=10).data()
    assert funding[0].funding_rate == "0.00010000"
    mark = api.mark_price(symbol="BTCUSDT").data()
    assert mark.actual_instance.symbol == "BTCUSDT" and float(mark.actual_instance.mark_price) > 0
    oi = api.open_interest_statistics(symbol="BTCUSDT", period="5m", start_time=T0, limit=3).data()
    assert len(oi) == 3 and oi[0].sum_open_interest == "80000.00000000"
    for method, kw in [("mark_price_kline_candlestick_data", {"symbol": "BTCUSDT"}),
                       ("index_price_kline_candlestick_data", {"pair": "BTCUSDT"}),
                       ("premium_index_kline_data", {"symbol": "BTCUSDT"})]:
        rows = getattr(api, method)(interval="1m", start_time=T0, limit=3, **kw).data()
        assert len(rows) == 3, method


def test_typed_trading_statistics(api):
    kw = {"symbol": "BTCUSDT", "period": "5m", "start_time": T0, "end_time": T0 + 3_600_000 - 1, "limit": 500}
    for method in ("top_trader_long_short_ratio_accounts", "top_trader_long_short_ratio_positions",
                   "long_short_ratio"):
        rows = getattr(api, method)(**kw).data()
        assert len(rows) == 12 and rows[0].timestamp == T0 and rows[0].symbol == "BTCUSDT", method
        r = rows[0]
        assert abs(float(r.long_account) / float(r.short_account) - float(r.long_short_ratio)) < 1e-3, method
    taker = api.taker_buy_sell_volume(**kw).data()
    assert [t.timestamp for t in taker] == [T0 + 300_000 * i for i in range(12)]
    assert float(taker[0].buy_vol) > 0 and float(taker[0].sell_vol) > 0 and taker[0].buy_sell_ratio == "1.0000"
    latest = api.open_interest_statistics(symbol="BTCUSDT", period="5m", limit=2).data()
    assert [o.timestamp for o in latest] == [T0 + 590 * 60_000, T0 + 595 * 60_000]  # no window: the latest


@pytest.mark.parametrize("kw, code", [({"start_time": T0 - 31 * 86_400_000}, -1130),
                                      ({"limit": 501}, -1130), ({"period": "1w"}, -1130)])
def test_statistics_refuse_what_binance_refuses(api, kw, code):
    with pytest.raises(BadRequestError) as err:
        api.open_interest_statistics(**{"symbol": "BTCUSDT", "period": "5m", **kw}).data()
    assert err.value.status_code == code


def test_agg_trades_refuses_more_than_an_hour(api):
    with pytest.raises(BadRequestError):
        api.compressed_aggregate_trades_list(symbol="BTCUSDT", start_time=T0, end_time=T0 + 3_600_001).data()
