"""Unit tests of btc_assets.lib.data.market and btc_assets.lib.data.synthetic."""
