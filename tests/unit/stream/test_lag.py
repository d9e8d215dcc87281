"""scamwatch_consumer_lag's reading, without Kafka: a partition revoked by the consumer's
thread between reading the assignment and its high watermark is skipped, not raised (a timer
that raises stops the whole Faust app: a worker crashed so in a rebalance test)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from engine.stream.app import input_lag

CALLS0, CALLS1, OTHER = TP("calls", 0), TP("calls", 1), TP("changelog", 0)


class Consumer:
    def __init__(self, revoked: set[TP]) -> None:
        self.revoked = revoked

    def assignment(self) -> set[TP]:
        return {CALLS0, CALLS1, OTHER}

    def highwater(self, tp: TP) -> int:
        # aiokafka's own check, as raised when the thread rebalanced meanwhile
        assert tp not in self.revoked, "Partition is not assigned"
        return 100

    async def position(self, tp: TP) -> int:
        return 40


class Dispatcher:
    def last_handled(self, topic: str, partition: int) -> int | None:
        return 89 if partition == 1 else None


def lag(revoked: set[TP]) -> dict[Any, int]:
    app = SimpleNamespace(consumer=Consumer(revoked))
    return asyncio.run(input_lag(app, {"calls"}, Dispatcher()))  # type: ignore[arg-type]


def test_lag_of_each_input_partition() -> None:
    assert lag(set()) == {CALLS0: 60, CALLS1: 10}


def test_a_partition_revoked_meanwhile_is_skipped() -> None:
    assert lag({CALLS0}) == {CALLS1: 10}
