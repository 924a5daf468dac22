"""Readers never see a partition that failed a blocking check.

Silver and gold compute every check on the rows they hold in memory *before* writing, then replace their window
only if each blocking check passed. A partition that fails one is not written: the previous version of those days
(or nothing, for days never written) stays what readers get, the materialization says so (`written: false`,
`withheld_by`), and the failed blocking check stops the run, so nothing downstream runs on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dagster as dg


def blocking_failures(specs: Sequence[dg.AssetCheckSpec], results: Sequence[dg.AssetCheckResult]) -> list[str]:
    """Names of the blocking checks among `results` that failed."""
    blocking = {s.name for s in specs if s.blocking}
    return [r.check_name for r in results if r.check_name in blocking and not r.passed]


def publish(specs: Sequence[dg.AssetCheckSpec], results: Sequence[dg.AssetCheckResult],
            write: Callable[[], int], rows: int) -> tuple[int, dict]:
    """Call `write` (the window replacement; returns the rows written) only when no blocking check failed.

    Returns the rows written and the metadata that says whether readers see this version."""
    failed = blocking_failures(specs, results)
    if failed:
        return 0, {"written": False, "rows_checked": rows, "withheld_by": failed,
                   "visible_to_readers": "the previous version of these days (or nothing): this one failed "
                                         f"{', '.join(failed)} and was not written"}
    return write(), {"written": True, "rows_checked": rows}


def window_writer(warehouse, table: str, columns: dict[str, str], df, time_column: str, start, end
                  ) -> Callable[[], int]:
    """`publish`'s write for an asset that computed outside the warehouse: a connection of its own, held only
    while the window is replaced (other runs use the file in between)."""
    from btc_assets.lib.storage.warehouse import replace_window

    def write() -> int:
        with warehouse.get_connection() as conn:
            return replace_window(conn, table, columns, df, time_column, start, end)

    return write
