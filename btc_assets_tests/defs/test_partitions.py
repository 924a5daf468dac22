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


def test_the_bundled_sample_ends_at_its_last_day_and_every_other_archive_stays_open(sample_archive, tmp_path):
    assert partitions.partitions_end({"BINANCE_ARCHIVE_URL": str(sample_archive)}) == "2024-02-29"
    assert partitions.partitions_end({"BINANCE_ARCHIVE_URL": "https://data.binance.vision"}) is None
    folder = tmp_path / "data/futures/um/monthly/klines/BTCUSDT/1m"
    folder.mkdir(parents=True)
    (folder / "BTCUSDT-1m-2023-11.zip").write_bytes(b"")
    assert partitions.partitions_end({"BINANCE_ARCHIVE_URL": str(tmp_path)}) is None  # a mirror grows: open
    assert partitions.last_archive_day(str(tmp_path)) == "2023-11-30"  # a monthly file counts to its month's end
    assert partitions.partitions_end({"BTC_PARTITIONS_END": "2024-06-30"}) == "2024-06-30"


def test_a_copy_of_the_bundled_sample_is_the_sample_and_a_changed_one_is_not(sample_archive, tmp_path):
    """Another checkout of the repository carries the same sample: its partitions end there too."""
    copy = tmp_path / "copy"
    days = copy / "data/futures/um/daily/klines/BTCUSDT/1m"
    days.mkdir(parents=True)
    (days / "BTCUSDT-1m-2024-02-29.zip").write_bytes(b"")
    manifest = (sample_archive / "synthetic_manifest.json").read_bytes()
    (copy / "synthetic_manifest.json").write_bytes(manifest)
    assert partitions.partitions_end({"BINANCE_ARCHIVE_URL": str(copy)}) == "2024-02-29"
    (copy / "synthetic_manifest.json").write_bytes(manifest.replace(b"true", b"false", 1))
    assert partitions.partitions_end({"BINANCE_ARCHIVE_URL": str(copy)}) is None
    with pytest.raises(ValueError, match="BTC_PARTITIONS_END='June' is not a date"):
        partitions.partitions_end({"BTC_PARTITIONS_END": "June"})


def test_with_the_sample_every_partition_is_one_the_data_can_fill(sample_archive):
    """Loaded as `make demo`/`make ui` load it: 60 daily partitions, the weeks that start within them."""
    import subprocess
    import sys

    code = ("from btc_assets.defs import partitions as p; d = p.daily.get_partition_keys(); "
            "w = p.weekly.get_partition_keys(); m = p.monthly.get_partition_keys(); "
            "print(len(d), d[0], d[-1], w[0], w[-1], m)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"BINANCE_ARCHIVE_URL": str(sample_archive), "PATH": "/usr/bin:/bin"}).stdout.split()
    # the last week (Monday 2024-02-26) starts within the data, so the demo trains it
    assert out == ["60", "2024-01-01", "2024-02-29", "2024-01-01", "2024-02-26", "['2024-01-01',", "'2024-02-01']"], out


def test_the_long_history_spans_the_mirrors_monthly_files_and_the_setting_wins(sample_archive, tmp_path):
    sample = {"BINANCE_ARCHIVE_URL": str(sample_archive)}
    assert partitions.history_start(sample) == "2019-10-01"
    assert partitions.history_end(sample) == "2025-01-01"  # the sample's last file is 2024-12
    assert partitions.history_start({}) == "2019-09-01" and partitions.history_end({}) is None
    assert partitions.history_end({"BINANCE_ARCHIVE_URL": str(tmp_path)}) is None  # another mirror stays open
    assert partitions.history_start({**sample, "BTC_HISTORY_START": "2021-03"}) == "2021-03-01"
    with pytest.raises(ValueError, match=r"BTC_HISTORY_START='2021-13'.*YYYY-MM"):
        partitions.history_start({"BTC_HISTORY_START": "2021-13"})
