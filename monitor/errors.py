"""The one exception hierarchy of driftd. Exceptions carry their data as attributes."""

from __future__ import annotations


class DriftdError(Exception):
    """Base of every error driftd raises on purpose."""


class ConfigError(DriftdError):
    """A configuration value is missing or invalid; the daemon exits 2."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class InvalidConfigError(DriftdError):
    """Several configuration problems found at once (each one names its key)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors

    @property
    def keys(self) -> list[str]:
        """The dotted keys at fault."""
        return [e.key for e in self.errors]


class DecodeError(DriftdError):
    """A message could not be decoded or validated; it is counted and dead-lettered."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ReferenceProfileError(DriftdError):
    """A reference profile is missing, unreadable or does not fit the schema."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class SourceError(DriftdError):
    """The event source failed in a way a retry will not fix."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class CheckpointError(DriftdError):
    """Writing or reading a checkpoint failed; offsets are not committed."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class ReferenceLostError(CheckpointError):
    """The daemon consumed before, but its warm-up reference is gone: learning a new one
    from current (perhaps drifted) traffic would hide the drift, so it refuses to start."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint is damaged or is not a driftd checkpoint; no part of it can be trusted.

    ``reason`` is a short machine-readable cause: ``truncated``, ``bad_magic``,
    ``checksum``, ``malformed``, ``unsupported_dtype``, ``missing_chunks``...
    """

    def __init__(self, location: str, message: str, *, reason: str) -> None:
        super().__init__(location, message)
        self.reason = reason


class CheckpointIncompatibleError(CheckpointError):
    """A sound checkpoint that this build or this configuration must not restore.

    ``what`` names the mismatch (``format_version``, ``state_version``,
    ``fingerprint`` or ``compression``); ``expected`` is what this process needs,
    ``found`` what the checkpoint holds.
    """

    def __init__(self, location: str, what: str, expected: object, found: object) -> None:
        super().__init__(location, f"{what} mismatch: expected {expected!r}, found {found!r}")
        self.what = what
        self.expected = expected
        self.found = found


class CheckpointStorageError(CheckpointError):
    """The checkpoint store could not be read or written (disk, permissions, Kafka).

    ``errno`` is the OS error number when an ``OSError`` was the cause, else None.
    A failed save leaves the last good checkpoint in place.
    """

    def __init__(self, location: str, message: str, *, errno: int | None = None) -> None:
        super().__init__(location, message)
        self.errno = errno


class CheckpointEncodeError(CheckpointError):
    """The state holds a value the checkpoint format cannot store; nothing was written.

    ``path`` names the value, e.g. ``state['segments'][3]``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__("encode", f"{path}: {message}")
        self.path = path


class StorageUnusableError(DriftdError):
    """A place driftd must write cannot be used, found at start; the daemon exits 3.

    ``key`` is the setting that names it (``checkpoint.directory``, ``checkpoint.topic``,
    ``journal.path``), ``location`` the path or topic, ``message`` what is wrong.
    Starting anyway would run blind: ready, but never committing or journaling.
    """

    def __init__(self, key: str, location: str, message: str) -> None:
        super().__init__(f"{key}: {location}: {message}")
        self.key = key
        self.location = location
        self.message = message


class OffsetCommitError(DriftdError):
    """Offsets were not committed (rebalance, lost membership, broker down); nothing was saved.

    ``offsets`` are the next offsets that were to be committed, by (topic, partition).
    ``retriable`` is True when committing again later can succeed (a rebalance in
    progress, a timeout); False when this member lost the partitions.
    """

    def __init__(
        self, offsets: dict[tuple[str, int], int], message: str, *, retriable: bool
    ) -> None:
        super().__init__(f"offset commit failed: {message}")
        self.offsets = offsets
        self.message = message
        self.retriable = retriable


class DeadLetterError(DriftdError):
    """Refused records could not be written to the dead-letter sink; do not commit past them."""

    def __init__(self, sink: str, count: int, message: str) -> None:
        super().__init__(f"{sink}: {count} dead-letter record(s) not written: {message}")
        self.sink = sink
        self.count = count
        self.message = message


class RebalanceCallbackError(DriftdError):
    """The daemon's on_assign / on_revoke callback raised during a consumer-group rebalance."""

    def __init__(self, callback: str, partitions: list[tuple[str, int]], message: str) -> None:
        super().__init__(f"{callback} failed for {len(partitions)} partition(s): {message}")
        self.callback = callback
        self.partitions = partitions
        self.message = message


class PartitionNotAssignedError(DriftdError):
    """A seek named partitions this consumer does not own (seek inside on_assign instead)."""

    def __init__(self, partitions: list[tuple[str, int]]) -> None:
        names = ", ".join(f"{topic}[{partition}]" for topic, partition in partitions)
        super().__init__(f"partitions not assigned to this consumer: {names}")
        self.partitions = partitions


class AlertDeliveryError(DriftdError):
    """An alert sink could not deliver an alert.

    ``sink`` is the sink's configured name, ``status`` the HTTP status (None when no
    response came), ``retriable`` whether the outbox should try again, and
    ``retry_after`` the seconds the receiver (or a local rate limit) asked to wait.
    The message never holds a secret (no URL, routing key or signature).
    """

    def __init__(
        self,
        sink: str,
        message: str,
        *,
        retriable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        reason: str = "error",
    ) -> None:
        super().__init__(f"{sink}: {message}")
        self.sink = sink
        self.message = message
        self.retriable = retriable
        self.status = status
        self.retry_after = retry_after
        self.reason = reason


class ReportError(DriftdError):
    """The HTML report of a backtest could not be made.

    ``missing_package`` names the Python package that is not installed (``pip install
    'driftd[report]'`` brings it), else None; ``key`` names the part of the backtest data
    at fault (e.g. ``windows[3].scores``), else None.
    """

    def __init__(
        self, message: str, *, missing_package: str | None = None, key: str | None = None
    ) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.message = message
        self.missing_package = missing_package
        self.key = key
