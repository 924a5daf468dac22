"""Brokers behind one interface (base.Broker): paper, and Binance testnet/live (explicit opt-in: see safety.py)."""
