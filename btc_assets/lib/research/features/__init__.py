"""Point-in-time gold features: a registry of 100+ features in families, computed on declared input frames.

    from btc_assets.lib.research.features import FEATURES, FEATURE_NAMES, WARMUP_BARS_1M, compute_features

Modules: spec (the Feature record, warm-up arithmetic), pit (sources, availability rules, as-of joins), one module
per family, registry (assembles them), compute (compute_features), checks (prefix invariance, warm-up, finiteness),
drift (population stability), docs (writes docs/FEATURES.md: `python -m btc_assets.lib.research.features.docs`).
"""

from btc_assets.lib.research.features.compute import compute_features, null_reasons
from btc_assets.lib.research.features.registry import (
    FAMILIES,
    FEATURE_NAMES,
    FEATURES,
    ROW_WARMUP_BARS_1M,
    WARMUP_BARS_1M,
)
from btc_assets.lib.research.features.spec import Feature

__all__ = ["FAMILIES", "FEATURES", "FEATURE_NAMES", "ROW_WARMUP_BARS_1M", "WARMUP_BARS_1M", "Feature",
           "compute_features", "null_reasons"]
