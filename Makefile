# btc-assets: every command a person needs. `make demo` and `make test` set everything up from scratch.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export BTC_DATA_DIR ?= $(CURDIR)/data
SAMPLE_ARCHIVE := $(CURDIR)/btc_assets/sample_data/archive

.PHONY: install demo test test-slow ui proxy bench soak metrics collect trade generate-sample clean

install: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned exactly: a looser spec pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	# .env for dg: the project's instance ($$BTC_DATA_DIR/dagster_home) and, unless set, the bundled sample.
	BINANCE_ARCHIVE_URL=$${BINANCE_ARCHIVE_URL:-$(SAMPLE_ARCHIVE)} $(BIN)/btc-assets env
	touch $(STAMP)

# The whole graph over the bundled sample (60 real days), offline.
demo: install
	BINANCE_ARCHIVE_URL=$${BINANCE_ARCHIVE_URL:-$(SAMPLE_ARCHIVE)} $(BIN)/btc-assets demo

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

# Dagster UI on http://127.0.0.1:3000 and MLflow UI on http://127.0.0.1:5000; Ctrl-C stops both.
ui: install
	BINANCE_ARCHIVE_URL=$${BINANCE_ARCHIVE_URL:-$(SAMPLE_ARCHIVE)} $(BIN)/btc-assets ui

# Both UIs behind nginx with basic auth (production: the UIs on 127.0.0.1, people through here). Needs BTC_UI_USERS.
proxy: install
	$(BIN)/btc-assets proxy

# The trader's Prometheus metrics on http://127.0.0.1:9108/metrics (written by every trading run).
metrics: install
	$(BIN)/btc-assets metrics

bench: install
	BINANCE_ARCHIVE_URL=$${BINANCE_ARCHIVE_URL:-$(SAMPLE_ARCHIVE)} $(BIN)/python -m btc_assets_tests.bench
	$(BIN)/python -m btc_assets_tests.bench_features
	$(BIN)/python -m btc_assets_tests.bench_lakehouse
	$(BIN)/python -m btc_assets_tests.bench_backtest
	$(BIN)/python -m btc_assets_tests.bench_market
	$(BIN)/python -m btc_assets_tests.bench_models
	$(BIN)/python -m btc_assets_tests.bench_collector --seconds 60
	$(BIN)/python -m btc_assets_tests.bench_live --bars 200
	$(BIN)/python -m btc_assets_tests.bench_live --bars 120 --postgres
	$(BIN)/python -m btc_assets_tests.bench_scale_out --chunk-days 15
	$(BIN)/python -m btc_assets_tests.bench_scale_out --chunk-days 10
	$(BIN)/python -m btc_assets_tests.bench_full_history

# The live worker on the fake exchange for 1,000 bars with faults injected and its process killed on 5 % of them (then
# restarted), invariants after every bar (~20 min).
soak: install
	$(BIN)/python -m btc_assets_tests.soak --bars 1000 --kill-rate 0.05

# Record the live market streams (kline_1m, aggTrade, depth20@100ms, markPrice@1s, forceOrder) until Ctrl-C/SIGTERM.
collect: install
	$(BIN)/btc-assets collect

# The live trader as a long-lived worker (paper unless BTC_TRADING_MODE/keys say otherwise; see README).
trade: install
	$(BIN)/btc-assets trade

# Rewrite the synthetic datasets of the bundled sample from its real klines (deterministic, byte-identical).
generate-sample: install
	$(BIN)/btc-assets generate-sample

clean:
	rm -rf $(BTC_DATA_DIR) .bench
