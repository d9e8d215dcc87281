"""The worker's topics: created at start when missing, never altered when they exist.

Workers are often deployed before partners produce anything, so the input topics may not
exist yet. With ``SCAMWATCH_CREATE_TOPICS`` (default true) the worker creates what is
missing, with ``SCAMWATCH_TOPIC_PARTITIONS`` and ``SCAMWATCH_TOPIC_REPLICATION``; without it
(or when another client creates them later) the consumer's metadata refresh finds them and
the worker consumes them within a few seconds (:data:`engine.stream.app.METADATA_MAX_AGE_MS`).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from engine.errors import ConfigError
from engine.settings import Settings

log = logging.getLogger(__name__)


def worker_topics(settings: Settings) -> list[str]:
    """Every topic a worker reads or writes: inputs, then outputs."""
    names = (
        settings.topics.calls,
        settings.topics.web,
        settings.topics.alerts,
        settings.topics.deadletter,
        settings.topics.sightings,
    )
    return list(dict.fromkeys(names))


async def prepare_topics(settings: Settings) -> list[str]:
    """Create the worker's missing topics (when allowed) and warn when ``calls`` and ``web``
    have different partition counts. Returns the topics still missing.

    A topic that exists is left as it is. A partition or replication count the cluster
    refuses is a bad setting (:class:`ConfigError`); any other failure (Kafka not up yet,
    not authorized to create) is logged, and the worker consumes the topics once they exist.
    """
    admin = AIOKafkaAdminClient(**settings.kafka.client_options())
    names = worker_topics(settings)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing and settings.worker.create_topics:
            missing = await _create(admin, settings, missing)
        if missing:
            why = "" if settings.worker.create_topics else " and SCAMWATCH_CREATE_TOPICS is false"
            log.warning(
                "topics %s do not exist%s: the worker consumes them once they are created",
                ", ".join(missing),
                why,
            )
        await _check_partitions(admin, settings, [n for n in names if n not in missing])
        return missing
    except KafkaError as exc:
        log.warning(
            "could not check or create the topics %s (%r): the worker consumes them once "
            "they exist",
            ", ".join(names),
            exc,
        )
        return names
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, settings: Settings, names: list[str]) -> list[str]:
    """Create ``names``; returns those that could not be created."""
    response: Any = await admin.create_topics(
        [NewTopic(n, settings.topics.partitions, settings.topics.replication) for n in names]
    )
    failed: list[str] = []
    created: list[str] = []
    for topic, code, *rest in response.topic_errors:
        if code == 0:
            created.append(topic)
            continue
        error = for_code(code)
        if error is TopicAlreadyExistsError:
            continue  # another worker or client made it in between: fine
        message = rest[0] if rest and rest[0] else error.__name__
        if error is InvalidReplicationFactorError:
            raise ConfigError("SCAMWATCH_TOPIC_REPLICATION", f"cannot create {topic}: {message}")
        if error is InvalidPartitionsError:
            raise ConfigError("SCAMWATCH_TOPIC_PARTITIONS", f"cannot create {topic}: {message}")
        log.warning("could not create topic %s: %s", topic, message)
        failed.append(topic)
    if created:
        log.info(
            "created topics %s (%d partitions, replication %d)",
            ", ".join(created),
            settings.topics.partitions,
            settings.topics.replication,
        )
    return failed


async def _check_partitions(
    admin: AIOKafkaAdminClient, settings: Settings, existing: list[str]
) -> None:
    # only topics that exist: describing a missing one asks the broker to auto-create it
    inputs = [t for t in (settings.topics.calls, settings.topics.web) if t in existing]
    if len(inputs) < 2:
        return
    counts: dict[str, int] = {}
    for info in await admin.describe_topics(inputs):
        if info["error_code"] == 0 and info["partitions"]:
            counts[info["topic"]] = len(info["partitions"])
    if len(counts) == 2 and len(set(counts.values())) > 1:
        log.warning(
            "%s has %d partitions and %s has %d: left as they are (nothing here needs them "
            "co-partitioned, but the load per worker is uneven)",
            settings.topics.calls,
            counts[settings.topics.calls],
            settings.topics.web,
            counts[settings.topics.web],
        )
