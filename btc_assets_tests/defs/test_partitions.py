"""Partitions start where the configured archive starts: no years of "missing" partitions in the UI."""

import pytest

from btc_assets.defs import partitions


def test_a_local_mirror_starts_at_its_first_kline_day(sample_archive):
    assert partitions.partitions_start({"BINANCE_ARCHIVE_URL": str(sample_archive)}) == "2024-01-01"
    assert partitions.partitions_start({"BINANCE_ARCHIVE_URL": sample_archive.as_uri()}) == "2024-01-01"


def test_a_mirror_of_monthly_files_starts_on_the_first_of_its_first_month(tmp_path):
    folder = tmp_path / "data/futures/um/monthly/klines/BTCUSDT/1m"
    folder.mkdir(parents=True)
    for name in ("BTCUSDT-1m-2023-11.zip", "BTCUSDT-1m-2023-11.zip.CHECKSUM", "BTCUSDT-1m-2023-12.zip"):
        (folder / name).write_bytes(b"")
    assert partitions.first_archive_day(str(tmp_path)) == "2023-11-01"


def test_the_public_archive_starts_at_the_listing_date_and_the_setting_wins(tmp_path):
    assert partitions.partitions_start({"BINANCE_ARCHIVE_URL": "https://data.binance.vision"}) == partitions.LISTING_DATE
    assert partitions.partitions_start({}) == partitions.LISTING_DATE
    assert partitions.partitions_start({"BINANCE_ARCHIVE_URL": str(tmp_path)}) == partitions.LISTING_DATE  # empty mirror
    assert partitions.partitions_start({"BTC_PARTITIONS_START": "2022-03-01",
                                        "BINANCE_ARCHIVE_URL": "https://data.binance.vision"}) == "2022-03-01"


def test_a_malformed_start_names_the_setting():
    with pytest.raises(ValueError, match="BTC_PARTITIONS_START='March 2022' is not a date.*YYYY-MM-DD"):
        partitions.partitions_start({"BTC_PARTITIONS_START": "March 2022"})


def test_the_first_partition_warms_up_from_the_data_there_is():
    """gold's warm-up and a model's training weeks reach before the first partition: mapped to nothing, no error."""
    first = partitions.daily.get_first_partition_key()
    up = partitions.warmup_mapping.get_upstream_mapped_partitions_result_for_partitions(
        partitions.daily.empty_subset().with_partition_keys([first]), partitions.daily, partitions.daily)
    assert list(up.partitions_subset.get_partition_keys()) == [first]
