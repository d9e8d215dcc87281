"""Input topics of Faust agents whose skipped records are never acked (both data paths' agents:
``agents``' inputs, and ``discover`` on ``sightings``).

A Faust stream (faust-streaming 0.15) skips a record fetched before a rebalance that reaches it
after the rebalance began (flow stopped, or an older consumer generation), and it *acks* the
skipped record: ``noack()`` does not cover that ack. With nothing else holding the message, the
ack is its last reference: the consumer marks the offset safe to commit, and the next commit
(the revoke's own, which has just forgotten the partition's committed offset, or one after the
assignment, where a single acked offset past the committed one is taken for a compacted gap,
faust-streaming#606) passes a record that was never processed. Faust then seeks to that offset:
the record is lost.

:class:`HeldSchema` decodes as the app's serializers say and takes one more reference on every
message; :func:`held_events` drops it when the event reaches the agent. The stream's ack of a
skipped record then only drops the Conductor's reference: the record stays unacked, the commit
stops before it, and Faust's seek to the committed offset after the rebalance reads it again
(what the ``inline`` path does with a stale record). Public API only (``Schema.compile``,
``Message.incref``/``decref``, ``Stream.noack``/``events``); tests/unit/stream/test_held.py
holds Faust to the reference counting this relies on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import faust


class HeldSchema(faust.Schema[bytes, bytes]):
    """Raw bytes in and out, and one more reference on each message decoded."""

    def compile(self, app: Any, **kwargs: Any) -> Any:
        decode = super().compile(app, **kwargs)

        async def held(message: Any, **options: Any) -> Any:
            message.incref()  # dropped by held_events, never by a skip's ack
            return await decode(message, **options)

        return held


def held_topic(app: faust.App, name: str) -> Any:
    """The topic ``name`` as an agent's input: acks on, raw bytes, references held."""
    return app.topic(name, acks=True, schema=HeldSchema(key_type=bytes, value_type=bytes))


async def held_events(stream: Any) -> AsyncIterator[Any]:
    """The events of an agent's stream over a :func:`held_topic`, not acked automatically
    (``noack``): the caller acks each one (``event.ack()``) when it needs nothing more."""
    async for event in stream.noack().events():
        event.message.decref()  # HeldSchema's reference: this event reached the agent
        yield event
