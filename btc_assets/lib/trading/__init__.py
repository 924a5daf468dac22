"""Trading: brokers (paper, Binance), the append-only journal, the per-bar trader, the kill switch, live bars and
the recorded market, metrics and notifications."""
