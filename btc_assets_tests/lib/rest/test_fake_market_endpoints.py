"""The fake exchange's market-data endpoints decode into the official client's typed models (so their shapes are
Binance's): aggTrades, fundingRate, premiumIndex, mark/index/premium klines, openInterestHist."""

from __future__ import annotations

import pytest
from binance_common.configuration import ConfigurationRestAPI
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures)

from btc_assets.lib.fake_exchange import run_in_thread
from btc_assets.lib.fake_exchange.replay import synthetic_bars

T0 = 1_704_067_200_000


@pytest.fixture(scope="module")
def api():
    with run_in_thread(synthetic_bars(600, t0_ms=T0), "k", "s") as fx:
        fx.exchange.cursor = 599
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


def test_agg_trades_refuses_more_than_an_hour(api):
    from binance_common.errors import BadRequestError
    with pytest.raises(BadRequestError):
        api.compressed_aggregate_trades_list(symbol="BTCUSDT", start_time=T0, end_time=T0 + 3_600_001).data()
