"""The `btc-assets` command: demo, ui, trade, collect, metrics and the production tools."""
