"""Unit tests of btc_assets.lib.market and btc_assets.lib.synthetic."""
