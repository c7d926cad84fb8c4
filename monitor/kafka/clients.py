"""Building kafka-python clients from ``kafka.*`` settings: TLS, SASL, and no leaked threads.

Every client driftd opens on the cluster (the source's group consumer and dead-letter
producer, the Kafka checkpoint store's consumer, producer and admin client) is built
here: :func:`connection_settings` says how to reach the brokers (servers, client id,
TLS and SASL), :func:`consumer_settings` and :func:`dead_letter_producer_settings` add
what each client does, and :func:`build_client` constructs one without leaking the
threads of a failed attempt, and gives a group consumer a group join that survives a
short ``poll`` (:func:`finish_joins_across_polls`, for kafka-python 3.0.12).

The settings are taken as validated: ``monitor.config`` checks the keys when the
configuration is loaded (``driftd check-config`` runs the same checks), so nothing is
validated again here.

Secrets. The SASL password is in the returned settings (kafka-python needs it): never
log them.
"""

from __future__ import annotations

import socket
import time
import weakref
from collections.abc import Sequence
from contextlib import suppress
from importlib.metadata import version
from typing import Any

import structlog

from monitor.config import KafkaConfig
from monitor.kafka.api import KafkaNetClient, MemberState, kafka_errors

log = structlog.get_logger()

__all__ = [
    "BOOTSTRAP_PROBE_TIMEOUT_S",
    "JOIN_FIX_VERSIONS",
    "build_client",
    "close_quietly",
    "connection_settings",
    "consumer_settings",
    "dead_letter_producer_settings",
    "finish_joins_across_polls",
    "security_settings",
]

BOOTSTRAP_PROBE_TIMEOUT_S = 2.0
"""How long :func:`build_client` waits for a TCP connection to a bootstrap server."""

_ONE_MIB = 1024 * 1024
_DEAD_LETTER_HEADROOM_BYTES = 64 * 1024


class _ClientFactory:
    """Builds kafka-python's network client and remembers it.

    A ``KafkaConsumer`` / ``KafkaProducer`` constructor that fails (broker down,
    bootstrap timeout) has already started the client's IO thread and never
    stops it; kafka-python 3.0.12 leaks one thread per failed attempt. Keeping
    the client lets the caller close it.
    """

    def __init__(self) -> None:
        self.clients: list[Any] = []

    def __call__(self, **configs: Any) -> Any:
        client = KafkaNetClient(**configs)
        self.clients.append(client)
        return client

    def close_all(self) -> None:
        """Close every client built so far (after a failed constructor)."""
        for client in self.clients:
            with suppress(Exception):
                client.close()
        self.clients.clear()


def connection_settings(kafka: KafkaConfig, connect_timeout_s: float) -> dict[str, Any]:
    """How any client reaches the brokers: servers, client id, TLS and SASL (includes the
    secret: never log)."""
    settings: dict[str, Any] = {
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "bootstrap_timeout_ms": max(1, int(connect_timeout_s * 1000)),
        "ssl_check_hostname": kafka.ssl_check_hostname,
    }
    if kafka.sasl_mechanism is not None:
        settings["sasl_mechanism"] = kafka.sasl_mechanism
        settings["sasl_plain_username"] = kafka.sasl_plain_username
        if kafka.sasl_plain_password is not None:
            settings["sasl_plain_password"] = kafka.sasl_plain_password.get_secret_value()
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(kafka, key)
        if path is not None:
            settings[key] = str(path)
    return settings


def security_settings(kafka: KafkaConfig) -> dict[str, Any]:
    """The client id and TLS / SASL settings, for clients that choose their own servers and
    timeouts (the Kafka checkpoint store): the secret is inside, so never log it."""
    settings = connection_settings(kafka, connect_timeout_s=10.0)
    for key in ("bootstrap_servers", "bootstrap_timeout_ms"):
        settings.pop(key)
    return settings


def consumer_settings(
    kafka: KafkaConfig, connect_timeout_s: float, max_poll_interval_ms: int | None = None
) -> dict[str, Any]:
    """The group consumer's kafka-python settings (includes the secret: never log)."""
    poll_interval_ms = max_poll_interval_ms or kafka.max_poll_interval_ms
    # A shorter max.poll.interval (tests) must not leave a longer session behind it.
    session_ms = min(kafka.session_timeout_ms, poll_interval_ms)
    settings = connection_settings(kafka, connect_timeout_s)
    settings.update(
        group_id=kafka.group_id,
        enable_auto_commit=False,
        auto_offset_reset=kafka.auto_offset_reset,
        max_poll_records=kafka.max_poll_records,
        fetch_max_bytes=kafka.fetch_max_bytes,
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
        # A fetch response frame can hold fetch_max_bytes plus one partition's
        # first batch; kafka-python raises a lower limit to that on its own.
        receive_message_max_bytes=max(
            kafka.receive_message_max_bytes,
            kafka.fetch_max_bytes + kafka.max_partition_fetch_bytes,
        ),
        isolation_level="read_committed",
        max_poll_interval_ms=poll_interval_ms,
        # kafka-python's 45 s default session kept a crashed replica's partitions
        # from its restarted self that long; a clean close leaves the group at once.
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=min(kafka.heartbeat_interval_ms, max(1, session_ms // 3)),
        # Its 30 s reconnect backoff delayed consumption long after a broker returned.
        reconnect_backoff_max_ms=kafka.retry_backoff_max_ms,
    )
    return settings


def dead_letter_producer_settings(
    kafka: KafkaConfig, connect_timeout_s: float, ack_timeout_s: float
) -> dict[str, Any]:
    """The dead-letter producer's settings: every write acknowledged by all replicas within
    ``ack_timeout_s`` (includes the secret: never log)."""
    settings = connection_settings(kafka, connect_timeout_s)
    request_timeout_ms = max(1000, int(ack_timeout_s * 500))
    settings.update(
        acks="all",
        linger_ms=5,
        # Not idempotent: with idempotence one refused batch (a record too
        # large for the topic) is fatal to the whole producer, and a
        # duplicate dead letter is harmless. One request in flight keeps
        # retried records in order.
        enable_idempotence=False,
        max_in_flight_requests_per_connection=1,
        max_block_ms=int(connect_timeout_s * 1000),
        request_timeout_ms=request_timeout_ms,
        delivery_timeout_ms=max(request_timeout_ms + 5, int(ack_timeout_s * 1000)),
        # Room for the largest record the consumer can fetch, plus the headers.
        max_request_size=max(_ONE_MIB, kafka.max_partition_fetch_bytes)
        + _DEAD_LETTER_HEADROOM_BYTES,
    )
    return settings


def _any_bootstrap_reachable(servers: Sequence[str], timeout_s: float) -> bool:
    """Whether some bootstrap server accepts a TCP connection (a cheap pre-check)."""
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host:
            host, port = server, "9092"
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def build_client(
    cls: Any, settings: dict[str, Any], probe_timeout_s: float = BOOTSTRAP_PROBE_TIMEOUT_S
) -> Any:
    """Construct a kafka-python client (consumer, producer, admin) without leaking threads.

    kafka-python 3.0.12 leaks, per failed constructor, the IO thread it started
    and every socket whose connect was refused. A TCP pre-check skips the
    attempt while no bootstrap server listens (the usual outage), and the
    client of a constructor that fails anyway is closed here.
    """
    servers: list[str] = settings["bootstrap_servers"]
    if not _any_bootstrap_reachable(servers, probe_timeout_s):
        raise ConnectionError("no bootstrap server accepts connections: " + ", ".join(servers))
    factory = _ClientFactory()
    try:
        client = cls(**settings, kafka_client=factory)
    except BaseException:
        factory.close_all()
        raise
    coordinator = getattr(client, "_coordinator", None)
    if coordinator is not None and settings.get("group_id") is not None:
        finish_joins_across_polls(coordinator)
    return client


JOIN_FIX_VERSIONS = frozenset({"3.0.12"})
"""kafka-python releases whose group join :func:`finish_joins_across_polls` corrects."""

_KAFKA_PYTHON = version("kafka-python")


def finish_joins_across_polls(coordinator: Any) -> bool:
    """Make a group join that outlasts one ``poll`` finish in a later one (kafka-python 3.0.12).

    ``poll(timeout_ms=N)`` may return while this member's JoinGroup + SyncGroup round
    trip is still in flight; kafka-python keeps it as ``_join_task`` for the next poll
    to await. Two flaws then leave the member outside its group, more often the busier
    the machine (the round trip outlasts the poll more often):

    * the next poll awaits it only while ``need_rejoin()`` holds, and a leader's
      rejoin that a metadata change asked for stops holding once the in-flight task has
      computed the new assignment: the task's result is never applied, the member stays
      REBALANCING without heartbeats, with no partitions, for good;
    * a task that completed between two polls is thrown away and a new JoinGroup sent,
      which starts another rebalance (in a group of two polled in turn, endlessly).

    Here a join in flight counts as a rejoin still needed, and a finished one is taken
    (its assignment applied, or its error handled as if it had just arrived). Returns
    whether the coordinator was changed (only on the versions in ``JOIN_FIX_VERSIONS``).
    """
    if _KAFKA_PYTHON not in JOIN_FIX_VERSIONS or not hasattr(coordinator, "_join_task"):
        return False
    # Weakly: a coordinator holding strong references to itself would outlive its
    # consumer until the cyclic collector ran (and with it any socket it still holds).
    owner = weakref.ref(coordinator)
    library_need_rejoin = type(coordinator).need_rejoin

    def need_rejoin() -> bool:
        member = owner()
        if member is None:
            return False
        return member._join_task is not None or bool(library_need_rejoin(member))

    async def join_group_async(timeout_ms: Any = None) -> bool:
        member = owner()
        if member is None:
            return False
        return await _join_group_async(member, timeout_ms)

    coordinator.need_rejoin = need_rejoin
    coordinator.join_group_async = join_group_async
    return True


async def _join_group_async(self: Any, timeout_ms: Any = None) -> bool:
    """kafka-python 3.0.12's ``BaseCoordinator.join_group_async``, except that a join task
    that finished while no poll awaited it is awaited (its result or error taken) instead of
    being replaced by a new JoinGroup."""
    if not self._use_group_apis:
        raise kafka_errors.UnsupportedVersionError("Group Coordinator APIs require 0.9+ broker")
    forever = timeout_ms is None or timeout_ms == float("inf")
    deadline = None if forever else time.monotonic() + timeout_ms / 1000

    def left_ms() -> int | None:
        if deadline is None:
            return None
        return max(0, int((deadline - time.monotonic()) * 1000))

    while self.need_rejoin():
        if not await self.ensure_coordinator_ready_async(timeout_ms=left_ms()):
            return False
        if self._join_task is None:  # the library: `or self._join_task.is_done`
            if not self.rejoining:
                await self._on_join_prepare_async(
                    self._generation.generation_id,
                    self._generation.member_id,
                    timeout_ms=left_ms(),
                )
                self.rejoining = True
                self._disable_heartbeat()
            self._join_task = self._manager.call_soon(self._do_join_and_sync_async)
        try:
            assignment_bytes = await self._manager.wait_for(self._join_task, left_ms())
        except kafka_errors.KafkaTimeoutError:
            return False  # still in flight: the next poll awaits it
        except (
            kafka_errors.UnknownMemberIdError,
            kafka_errors.RebalanceInProgressError,
            kafka_errors.IllegalGenerationError,
            kafka_errors.MemberIdRequiredError,
        ):
            self._join_task = None
            continue
        except kafka_errors.RetriableError:
            self._join_task = None
            remaining = left_ms()
            if remaining == 0:
                return False
            backoff_ms = self.config["retry_backoff_ms"]
            if remaining is not None:
                backoff_ms = min(backoff_ms, remaining)
            if backoff_ms > 0:
                await self._net.sleep(backoff_ms / 1000)
            continue
        except kafka_errors.KafkaError:
            self._join_task = None
            raise
        self._join_task = None
        with self._lock:
            if self.state is not MemberState.REBALANCING:
                continue  # left the group (poll interval exceeded) since: join again
            self.rejoining = False
            self.rejoin_needed = False
            self.state = MemberState.STABLE
            self._enable_heartbeat()
        await self._on_join_complete_async(
            self._generation.generation_id,
            self._generation.member_id,
            self._generation.protocol,
            assignment_bytes,
        )
        return True
    return True


def close_quietly(client: Any, failed_event: str) -> None:
    """Close a client dropped after a failure, without waiting for it; a client that
    cannot even close is logged at debug as ``failed_event`` (the failure that dropped
    it was reported already)."""
    if client is None:
        return
    try:
        client.close(timeout=0)
    except Exception as exc:
        log.debug(failed_event, error=str(exc))
