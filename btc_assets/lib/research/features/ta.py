"""TA-Lib's compiled indicator functions without the wrapper `import talib` puts around each of them.

The wrapper converts pandas or polars Series; the features pass float64 arrays only, and its checks cost about as
much as a short window's computation (the point-in-time audit and the live decision step compute on short windows).
`talib.RSI(...)` here is the very function the wrapper calls, so every value is the same.
"""

from __future__ import annotations

import talib as _talib


class _Compiled:
    def __getattr__(self, name: str):
        f = getattr(_talib, name)
        compiled = getattr(f, "__wrapped__", f)
        setattr(self, name, compiled)
        return compiled


talib = _Compiled()
