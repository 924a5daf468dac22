"""Order records of the fake exchange and their Binance JSON renderings (REST replies and ORDER_TRADE_UPDATE)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    orig_qty: float
    price: float
    reduce_only: bool
    time: int
    status: str = "NEW"
    executed_qty: float = 0.0
    cum_quote: float = 0.0
    avg_price: float = 0.0
    update_time: int = 0
    orig_type: str = ""
    stop_price: float = 0.0
    accepted_wall: float = 0.0  # this machine's clock when the exchange accepted it (time is the market's clock)

    def rest(self) -> dict:
        """The shape of POST/GET/DELETE /fapi/v1/order replies."""
        return {
            "orderId": self.order_id, "symbol": self.symbol, "status": self.status,
            "clientOrderId": self.client_order_id, "price": f"{self.price:.2f}", "avgPrice": f"{self.avg_price:.2f}",
            "origQty": f"{self.orig_qty:.3f}", "executedQty": f"{self.executed_qty:.3f}",
            "cumQty": f"{self.executed_qty:.3f}", "cumQuote": f"{self.cum_quote:.5f}",
            "timeInForce": self.time_in_force, "type": self.type, "origType": self.orig_type or self.type,
            "reduceOnly": self.reduce_only, "closePosition": False, "side": self.side, "positionSide": "BOTH",
            "stopPrice": f"{self.stop_price:.2f}", "workingType": "CONTRACT_PRICE", "priceProtect": False,
            "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
            "time": self.time, "updateTime": self.update_time or self.time,
        }

    def user_update(self, exec_type: str, last_qty: float = 0.0, last_price: float = 0.0, fee: float = 0.0,
                    maker: bool = False, realized: float = 0.0) -> dict:
        """The "o" object of an ORDER_TRADE_UPDATE user-data event."""
        return {
            "s": self.symbol, "c": self.client_order_id, "S": self.side, "o": self.type, "f": self.time_in_force,
            "q": f"{self.orig_qty:.3f}", "p": f"{self.price:.2f}", "ap": f"{self.avg_price:.2f}",
            "sp": f"{self.stop_price:.2f}", "x": exec_type, "X": self.status, "i": self.order_id,
            "l": f"{last_qty:.3f}", "z": f"{self.executed_qty:.3f}", "L": f"{last_price:.2f}", "N": "USDT",
            "n": f"{fee:.8f}", "T": self.update_time or self.time, "t": self.order_id if exec_type == "TRADE" else 0,
            "b": "0", "a": "0", "m": maker, "R": self.reduce_only, "wt": "CONTRACT_PRICE",
            "ot": self.orig_type or self.type, "ps": "BOTH", "cp": False, "rp": f"{realized:.8f}", "pP": False,
            "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
        }


@dataclass
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    quantity: float
    trigger_price: float
    reduce_only: bool
    close_position: bool
    create_time: int
    status: str = "NEW"
    update_time: int = 0
    actual_order_id: int | None = None

    def rest(self) -> dict:
        """The shape of POST/GET/DELETE /fapi/v1/algoOrder replies."""
        return {
            "algoId": self.algo_id, "clientAlgoId": self.client_algo_id, "algoType": "CONDITIONAL",
            "orderType": self.order_type, "symbol": self.symbol, "side": self.side, "positionSide": "BOTH",
            "timeInForce": "GTC", "quantity": f"{self.quantity:.3f}", "algoStatus": self.status,
            "triggerPrice": f"{self.trigger_price:.2f}", "price": "0.00", "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": "CONTRACT_PRICE", "priceMatch": "NONE",
            "closePosition": self.close_position, "priceProtect": False, "reduceOnly": self.reduce_only,
            "createTime": self.create_time, "updateTime": self.update_time or self.create_time,
            "triggerTime": self.update_time if self.actual_order_id else 0, "goodTillDate": 0,
            "actualOrderId": str(self.actual_order_id) if self.actual_order_id else "",
        }
