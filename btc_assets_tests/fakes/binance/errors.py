"""Binance USD-M error replies the fake exchange can give, as (HTTP status, code, message) in Binance's words."""

from __future__ import annotations


class ApiError(Exception):
    """An error reply: rendered as {"code": code, "msg": msg} with the HTTP status Binance uses for it."""

    def __init__(self, code: int, msg: str, http_status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(f"{code}: {msg}")
        self.code, self.msg, self.http_status, self.headers = code, msg, http_status, headers or {}


def timestamp_outside_recv_window() -> ApiError:
    return ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def bad_precision(field: str) -> ApiError:
    return ApiError(-1111, f"Precision is over the maximum defined for this asset ({field}).")


def margin_insufficient() -> ApiError:
    return ApiError(-2019, "Margin is insufficient.")


def notional_too_small(min_notional: float) -> ApiError:
    return ApiError(-4164, f"Order's notional must be no smaller than {min_notional:g} "
                    "(unless you choose reduce only).")


def unknown_order() -> ApiError:
    return ApiError(-2013, "Order does not exist.")


def duplicate_client_id() -> ApiError:
    return ApiError(-4116, "ClientOrderId is duplicated.")


def post_only_rejected() -> ApiError:
    return ApiError(-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.")


def use_algo_endpoint() -> ApiError:
    return ApiError(-4120, "Order type not supported for this endpoint. "
                    "Please use the Algo Order API endpoints instead.")


def reduce_only_rejected() -> ApiError:
    return ApiError(-2022, "ReduceOnly Order is rejected.")


def bad_signature() -> ApiError:
    return ApiError(-1022, "Signature for this request is not valid.")


def bad_api_key() -> ApiError:
    return ApiError(-2015, "Invalid API-key, IP, or permissions for action.", http_status=401)


def missing_param(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def bad_value(name: str, value: str) -> ApiError:
    return ApiError(-1130, f"Data sent for parameter '{name}' is not valid: {value!r}.")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(-1003, "Too many requests; current limit of IP is 2400 requests per minute. Please use the "
                    "websocket for live updates to avoid polling the API.", 429, {"Retry-After": str(retry_after)})


def banned(retry_after: int) -> ApiError:
    return ApiError(-1003, "Way too many requests; IP banned until further notice. Please use the websocket for "
                    "live updates to avoid bans.", 418, {"Retry-After": str(retry_after)})
