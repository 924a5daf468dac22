"""The fake exchange's account: USDT wallet, one-way BTCUSDT position, leverage and margin type, fees and PnL.

Fills change the position at volume-weighted entry price; closing quantity realises PnL into the wallet; fees are
charged on every fill (maker or taker). Margin checks use initial margin = notional / leverage, as Binance does
for an order that opens or grows a position.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Position:
    amount: float = 0.0  # signed, base units (BTC)
    entry_price: float = 0.0
    leverage: int = 20
    margin_type: str = "CROSSED"  # CROSSED or ISOLATED, as Binance writes it in requests
    update_time: int = 0


@dataclass
class Account:
    wallet: float = 10_000.0
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    realized_pnl: float = 0.0
    fees_paid: float = 0.0
    positions: dict[str, Position] = field(default_factory=dict)

    def position(self, symbol: str) -> Position:
        return self.positions.setdefault(symbol, Position())

    def used_margin(self, mark: dict[str, float]) -> float:
        return sum(abs(p.amount) * mark.get(s, p.entry_price) / p.leverage for s, p in self.positions.items())

    def unrealized(self, mark: dict[str, float]) -> float:
        return sum(p.amount * (mark.get(s, p.entry_price) - p.entry_price) for s, p in self.positions.items())

    def available(self, mark: dict[str, float]) -> float:
        return self.wallet + min(self.unrealized(mark), 0.0) - self.used_margin(mark)

    def opening_qty(self, symbol: str, side: str, qty: float) -> float:
        """The part of an order that would open or grow the position (the rest reduces it)."""
        amt = self.position(symbol).amount
        signed = qty if side == "BUY" else -qty
        if amt == 0 or (amt > 0) == (signed > 0):
            return qty
        return max(abs(signed) - abs(amt), 0.0)

    def apply_fill(self, symbol: str, side: str, qty: float, price: float, maker: bool,
                   now_ms: int) -> tuple[float, float]:
        """Book a fill; returns (fee, realised PnL)."""
        pos = self.position(symbol)
        signed = qty if side == "BUY" else -qty
        fee = qty * price * (self.maker_fee if maker else self.taker_fee)
        realized = 0.0
        if pos.amount == 0 or (pos.amount > 0) == (signed > 0):
            new_amt = pos.amount + signed
            pos.entry_price = (abs(pos.amount) * pos.entry_price + qty * price) / abs(new_amt)
            pos.amount = new_amt
        else:
            closing = min(abs(signed), abs(pos.amount))
            realized = closing * (price - pos.entry_price) * (1 if pos.amount > 0 else -1)
            new_amt = pos.amount + signed
            if abs(new_amt) < 1e-12:
                pos.amount, pos.entry_price = 0.0, 0.0
            elif (new_amt > 0) != (pos.amount > 0):  # flipped: the remainder opens at the fill price
                pos.amount, pos.entry_price = new_amt, price
            else:
                pos.amount = new_amt
        pos.amount = round(pos.amount, 8)
        pos.update_time = now_ms
        self.wallet += realized - fee
        self.realized_pnl += realized
        self.fees_paid += fee
        return fee, realized

    def position_risk(self, symbol: str, mark_price: float) -> dict:
        """GET /fapi/v2|v3/positionRisk row, in Binance's string encoding."""
        p = self.position(symbol)
        notional = p.amount * mark_price
        return {
            "symbol": symbol, "positionSide": "BOTH", "positionAmt": f"{p.amount:.3f}",
            "entryPrice": f"{p.entry_price:.8f}", "breakEvenPrice": f"{p.entry_price:.8f}",
            "markPrice": f"{mark_price:.8f}", "unRealizedProfit": f"{p.amount * (mark_price - p.entry_price):.8f}",
            "liquidationPrice": "0", "leverage": str(p.leverage), "maxNotionalValue": "20000000",
            "marginType": p.margin_type.lower().replace("crossed", "cross"), "isolatedMargin": "0.00000000",
            "isAutoAddMargin": "false", "notional": f"{notional:.8f}", "isolatedWallet": "0",
            "updateTime": p.update_time,
        }

    def balance_row(self, mark: dict[str, float], now_ms: int) -> dict:
        """GET /fapi/v2|v3/balance row for USDT."""
        avail = self.available(mark)
        return {
            "accountAlias": "fake", "asset": "USDT", "balance": f"{self.wallet:.8f}",
            "crossWalletBalance": f"{self.wallet:.8f}", "crossUnPnl": f"{self.unrealized(mark):.8f}",
            "availableBalance": f"{avail:.8f}", "maxWithdrawAmount": f"{max(avail, 0.0):.8f}",
            "marginAvailable": True, "updateTime": now_ms,
        }
