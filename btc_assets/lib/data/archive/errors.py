"""What can go wrong with an archive file, each error naming the file and what to do."""

from __future__ import annotations

REFETCH = "delete the local copy and re-fetch it; if a fresh download fails the same way, report the file"

NOT_PUBLISHED_HINT = (
    "the archive publishes a day's file about a day after the day ends (monthly files after the month ends): "
    "retry later, or take recent data from the REST API"
)


class ArchiveError(Exception):
    """Any failure to get or read an archive file; `.path` is the archive relative path, URL or file name."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self):  # keep .path and subclass attributes across pickling (multiprocess executors)
        return (type(self), (self.args[0], self.path), self.__dict__)


class ArchiveNotPublished(ArchiveError):
    """The file is not (yet) in the archive: HTTP 404 or missing in the local mirror."""


class ArchiveUnreachable(ArchiveError):
    """The archive could not be reached (connection error, timeout, 5xx/429) after all retries."""


class ChecksumMissing(ArchiveError):
    """The zip exists but its .CHECKSUM does not, so the download cannot be verified."""


class ChecksumMismatch(ArchiveError):
    """The zip's sha256 differs from its .CHECKSUM, or the .CHECKSUM is unreadable or names another file."""

    def __init__(self, message: str, path: str | None = None, expected: str | None = None,
                 actual: str | None = None) -> None:
        super().__init__(message, path)
        self.expected = expected
        self.actual = actual


class CorruptArchive(ArchiveError):
    """The bytes are not a readable zip, or the zip does not hold exactly one CSV."""


class MalformedCsv(ArchiveError):
    """The CSV inside the zip does not match the expected layout; `.row` is the 1-based line number."""

    def __init__(self, message: str, path: str | None = None, row: int | None = None,
                 column: str | None = None, value: str | None = None) -> None:
        super().__init__(message, path)
        self.row = row
        self.column = column
        self.value = value
