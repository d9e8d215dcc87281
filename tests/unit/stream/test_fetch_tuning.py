"""The inline path's fetch tuning (SCAMWATCH_FETCH_MIN_BYTES, SCAMWATCH_FETCH_MAX_WAIT_SECONDS):
the aiokafka consumer Faust builds for an inline worker fetches as one built with those
arguments would, and nothing else about it changes; the agents path keeps Faust's consumer.

Real aiokafka consumers and a real Faust app, built and never started (nothing on the wire)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka
import faust
import pytest

from engine.settings import load_settings
from engine.stream.app import FetchTuning, ScamwatchApp, WorkerApp, tune_fetch

BROKER = "127.0.0.1:1"  # never contacted: the consumers are not started


def fetch_state(consumer: aiokafka.AIOKafkaConsumer) -> dict[str, Any]:
    """What the consumer keeps of its constructor's arguments (clients and locks left out:
    they are new objects each time)."""
    return {k: v for k, v in vars(consumer).items() if isinstance(v, int | float | str | None)}


async def built(**kwargs: Any) -> aiokafka.AIOKafkaConsumer:
    return aiokafka.AIOKafkaConsumer(bootstrap_servers=BROKER, **kwargs)


def test_tuning_a_built_consumer_is_building_it_with_the_arguments() -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        default = await built()
        before = fetch_state(default)
        tune_fetch(default, FetchTuning(min_bytes=12_345, max_wait_ms=67))
        public = await built(fetch_min_bytes=12_345, fetch_max_wait_ms=67)
        return before, fetch_state(default), fetch_state(public)

    before, tuned, public = asyncio.run(main())
    # the same attributes as aiokafka's constructor sets from the two arguments: when aiokafka
    # keeps them elsewhere, this fails (and engine.stream.fastpath's fingerprints change)
    assert tuned == public
    assert tuned != before
    assert {k for k in tuned if tuned[k] != before[k]} == {"_fetch_min_bytes", "_fetch_max_wait_ms"}


@pytest.mark.parametrize("gone", ["_fetch_min_bytes", "_fetch_max_wait_ms"])
def test_a_consumer_that_keeps_no_such_attribute_is_refused(gone: str) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        consumer = await built()
        delattr(consumer, gone)  # as an aiokafka that keeps it elsewhere would be
        before = fetch_state(consumer)
        with pytest.raises(RuntimeError, match=gone):
            tune_fetch(consumer, FetchTuning(min_bytes=1_000, max_wait_ms=10))
        return before, fetch_state(consumer)

    before, after = asyncio.run(main())
    assert gone not in after
    assert after == before  # nothing half-set: the other attribute is left as it was


def worker_consumer(app: faust.App) -> aiokafka.AIOKafkaConsumer:
    """The aiokafka consumer the app's consumer thread builds for a worker."""
    thread: Any = app.consumer._new_consumer_thread()  # type: ignore[attr-defined]
    consumer: aiokafka.AIOKafkaConsumer = thread._create_worker_consumer(app.transport)
    return consumer


def test_an_inline_worker_fetches_as_its_settings_say(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMWATCH_FETCH_MIN_BYTES", "32768")
    monkeypatch.setenv("SCAMWATCH_FETCH_MAX_WAIT_SECONDS", "0.035")
    tuning = FetchTuning.of(load_settings())
    assert tuning == FetchTuning(min_bytes=32_768, max_wait_ms=35)

    async def main() -> tuple[aiokafka.AIOKafkaConsumer, aiokafka.AIOKafkaConsumer]:
        inline = WorkerApp("fetch-test", broker=f"kafka://{BROKER}")
        inline.fetch = tuning
        agents = ScamwatchApp("fetch-test", broker=f"kafka://{BROKER}")
        return worker_consumer(inline), worker_consumer(agents)

    inline, agents = asyncio.run(main())
    assert (inline._fetch_min_bytes, inline._fetch_max_wait_ms) == (32_768, 35)
    # the agents path is Faust's consumer as Faust makes it (1 byte: answer at once)
    assert (agents._fetch_min_bytes, agents._fetch_max_wait_ms) == (1, 1500)
    tuned = {"_fetch_min_bytes", "_fetch_max_wait_ms"}
    assert {k: v for k, v in fetch_state(inline).items() if k not in tuned} == {
        k: v for k, v in fetch_state(agents).items() if k not in tuned
    }


def test_the_defaults_gather_a_fetch_for_at_most_20_ms() -> None:
    assert FetchTuning.of(load_settings()) == FetchTuning(min_bytes=65_536, max_wait_ms=20)
