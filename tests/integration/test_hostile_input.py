"""Hostile input through the real worker: a batch of generated records (random bytes, deep
and wide JSON, huge strings and numbers, every field of the wrong type, NUL and lone
surrogates, raw invalid UTF-8, valid records with absurd values) produced to real topics of
this test's own and consumed by one real ``scamwatch worker``.

Asserted once, for the whole batch: the worker stays up (process alive, ``/metrics``
answering) and every input is accounted for exactly once, processed or dead-lettered:
``scamwatch_events_total`` by stream and outcome, the alerts' and dead letters' source
positions read back from the topics, and the verdict of the pure core on each record.

The batch comes from hypothesis (derandomized: the same records on every run), generated
one record per example and produced all at once: one worker start, not one per example.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine.core.matcher import Matcher
from engine.core.models import Indicator, IndicatorType, SourcePosition, Stream
from engine.core.processor import RecordProcessor
from engine.devtools.scrape import MetricsScrape
from engine.store.redis import RedisStore
from tests.integration.worker_support import (
    Topics,
    WorkerProcess,
    group_lag,
    topics_fixture,
)

N_RECORDS = 400
PARTITIONS = 2  # of every topic of the test
MAX_RECORD_BYTES = 262_144  # the worker's limit here: some records are generated above it
NOW_MS = int(time.time() * 1000)
SCAM_NUMBER = "+18005550199"
T = IndicatorType
INDICATORS = (
    Indicator(T.PHONE, SCAM_NUMBER, sources=("test",)),
    Indicator(T.DOMAIN, "evil.example", sources=("test",)),
    Indicator(T.URL, "pay.example/refund", sources=("test",)),
    Indicator(T.KEYWORD, "microsoft-support", sources=("test",)),
)

# what a generated record must become, when the generator knows; "any" leaves it to the core
DEADLETTER, PROCESSED, ANY = "deadletter", "processed", "any"


@dataclass(frozen=True)
class Hostile:
    stream: Stream
    key: bytes | None
    value: bytes | None
    expect: str
    kind: str  # which generator made it (for failure messages)


# -- the generators --------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
REQUIRED = {
    Stream.CALLS: ("event_id", "ts", "partner_id", "caller", "callee"),
    Stream.WEB: ("event_id", "ts", "partner_id"),
}
OPTIONAL = {
    Stream.CALLS: ("region", "subscriber_id", "direction", "duration_s", "attestation"),
    Stream.WEB: ("url", "host", "referrer", "kind", "subscriber_id"),
}
TS_FORMS = st.sampled_from([NOW_MS, "2026-11-28T10:00:00Z", "2026-11-28T10:00:00.123+01:00"])
NUMBERS = st.sampled_from(
    [SCAM_NUMBER, "+1 (800) 555-0199", "18005550199", "(202) 555-0111", "0044 20 7946 0000",
     "anonymous", "", "+442079460000", "1-800-FLOWERS"]
)  # fmt: skip
HOSTS = st.sampled_from(
    ["www.example.com", "a.evil.example", "xn--mcrosoft-support-9vn.example",
     "rnicrosoft-support.help", "EXAMPLE.org.", "[2001:db8::1]", "10.0.0.1", "bücher.de"]
)  # fmt: skip
URLS = st.sampled_from(
    ["https://pay.example/refund?id=1", "http://x.example/call-1-800-555-0199",
     "hxxps://evil[.]example/a", "https://www.example.com/", "https://x.example/?tel=18005550199",
     "ftp://files.example/x", "https://u:p@[2001:db8::1]:8443/p", "/relative/only"]
)  # fmt: skip


@st.composite
def valid_record(draw: st.DrawFn, stream: Stream) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": f"e{draw(st.integers(0, 10**6))}",
        "ts": draw(TS_FORMS),
        "partner_id": draw(st.sampled_from(["p1", "p2"])),
    }
    if stream is Stream.CALLS:
        record["caller"] = draw(NUMBERS)
        record["callee"] = draw(NUMBERS)
        if draw(st.booleans()):
            record["subscriber_id"] = "s1"
            record["direction"] = draw(st.sampled_from(["inbound", "outbound"]))
    else:
        if draw(st.booleans()):
            record["host"] = draw(HOSTS)
        if draw(st.booleans()) or "host" not in record:
            record["url"] = draw(URLS)
        if draw(st.booleans()):
            record["referrer"] = draw(URLS)
    return record


def _big(draw: st.DrawFn, pattern: str, low: int, high: int) -> str:
    return pattern * draw(st.integers(low, high))


@st.composite
def absurd_text(draw: st.DrawFn) -> str:
    """Strings built to be slow to read as a number, host or URL, or just enormous."""
    choice = draw(st.integers(0, 11))
    if choice == 0:
        return ".".join(["a"] * 10_000)  # 10k labels
    if choice == 1:
        return "1" * 5000  # a 5000-digit run
    if choice == 2:
        return "http://x.example/" + "-".join("1" * draw(st.integers(500, 3000)))
    if choice == 3:
        return "http://x.example/?" + "&".join(
            f"tel=1800555{i:04d}" for i in range(draw(st.integers(100, 3000)))
        )
    if choice == 4:
        return "http://x.example/" + _big(draw, "%2B1", 1000, 20_000)
    if choice == 5:
        return _big(draw, "mіcrosоft-suppоrt", 100, 5000)  # Cyrillic look-alikes
    if choice == 6:
        return ".".join(["xn--mcrosoft-support-9vn"] * draw(st.integers(10, 2000)))
    if choice == 7:
        return "http://" + _big(draw, "a.", 1000, 50_000) + "com/"
    if choice == 8:
        return _big(draw, "x", 10_000, 200_000)  # a huge plain string
    if choice == 9:
        return "+" + "1" * draw(st.integers(16, 5000))
    if choice == 10:
        return "http://[" + _big(draw, "1:", 100, 10_000) + "]/"
    return draw(st.text(min_size=1, max_size=200))  # any Unicode, NUL included


def _dumps(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


@st.composite
def hostile(draw: st.DrawFn) -> Hostile:
    stream = draw(st.sampled_from([Stream.CALLS, Stream.WEB]))
    key = draw(st.none() | st.binary(max_size=40) | st.just(b"p1:s1"))
    kind = draw(
        st.sampled_from(
            ["valid", "random_bytes", "invalid_utf8", "surrogate", "nul", "deep", "wide",
             "huge_field", "huge_number", "wrong_type", "missing", "absurd_ts", "absurd_value",
             "not_object", "too_large", "tombstone", "extra_any"]
        )
    )  # fmt: skip
    base = draw(valid_record(stream))
    fields = [*REQUIRED[stream], *OPTIONAL[stream]]
    if kind == "valid":
        return Hostile(stream, key, _dumps(base), PROCESSED, kind)
    if kind == "random_bytes":
        raw = draw(st.binary(max_size=3000))
        # any bytes but a JSON object with the required fields: never processed
        return Hostile(stream, key, raw, DEADLETTER, kind)
    if kind == "invalid_utf8":
        text = _dumps(base)
        cut = draw(st.integers(0, len(text)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
        return Hostile(stream, key, text[:cut] + bad + text[cut:], DEADLETTER, kind)
    if kind == "surrogate":
        # a lone surrogate as a JSON escape: valid UTF-8 bytes, text no encoder can write back
        field = draw(st.sampled_from(fields))
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "a\\ud83d", "\\udc00\\ud800"]))
        text = _dumps({k: v for k, v in base.items() if k != field})
        raw = text[:-1] + f',"{field}":"{escape}"}}'.encode()
        return Hostile(stream, key, raw, ANY, kind)
    if kind == "nul":
        field = draw(st.sampled_from(fields))
        base[field] = draw(st.sampled_from(["\x00", "a\x00b", "+1800555\x000199", "\x00" * 100]))
        return Hostile(stream, key, _dumps(base), ANY, kind)
    if kind == "deep":
        depth = draw(st.integers(100, 5000))
        nested = b"[" * depth + b"1" + b"]" * depth
        where = draw(st.sampled_from(["whole", "extra", "field"]))
        if where == "whole":
            return Hostile(stream, key, nested, DEADLETTER, kind)
        field = "x_extra" if where == "extra" else draw(st.sampled_from(REQUIRED[stream]))
        text = _dumps({k: v for k, v in base.items() if k != field})
        return Hostile(stream, key, text[:-1] + f',"{field}":'.encode() + nested + b"}", ANY, kind)
    if kind == "wide":
        n = draw(st.integers(100, 5000))
        extra = {f"x{i}": i for i in range(n)}
        return Hostile(stream, key, _dumps({**extra, **base}), PROCESSED, kind)
    if kind == "huge_field":
        field = draw(st.sampled_from(fields))
        base[field] = draw(absurd_text())
        return Hostile(stream, key, _dumps(base), ANY, kind)
    if kind == "huge_number":
        field = draw(st.sampled_from([*fields, "x_extra"]))
        number = draw(st.sampled_from(["1e400", "-1e400", "9" * 5000, "-0", "1.5", "1e308"]))
        text = _dumps({k: v for k, v in base.items() if k != field})
        return Hostile(stream, key, text[:-1] + f',"{field}":{number}}}'.encode(), ANY, kind)
    if kind == "wrong_type":
        field = draw(st.sampled_from(fields))
        value = draw(JSON_VALUES)
        base[field] = value
        wrong = not isinstance(value, str) and not (field == "ts" and type(value) is int)
        if field in OPTIONAL[stream]:
            wrong = wrong and value is not None
        return Hostile(stream, key, _dumps(base), DEADLETTER if wrong else ANY, kind)
    if kind == "missing":
        field = draw(st.sampled_from(REQUIRED[stream]))
        del base[field]
        return Hostile(stream, key, _dumps(base), DEADLETTER, kind)
    if kind == "absurd_ts":
        base["ts"] = draw(
            st.sampled_from(
                ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-13-45T99:99:99Z",
                 -(10**15), 10**18, 0, 253402300800000, "2026-11-28", "yesterday"]
            )
        )  # fmt: skip
        return Hostile(stream, key, _dumps(base), ANY, kind)
    if kind == "absurd_value":
        field = draw(st.sampled_from(fields))
        base[field] = draw(absurd_text())
        return Hostile(stream, key, _dumps(base), ANY, kind)
    if kind == "not_object":
        raw = _dumps(draw(JSON_SCALARS | st.lists(JSON_SCALARS, max_size=5)))
        return Hostile(stream, key, raw, DEADLETTER, kind)
    if kind == "too_large":
        base["x_pad"] = "x" * (MAX_RECORD_BYTES + draw(st.integers(1, 40_000)))
        return Hostile(stream, key, _dumps(base), DEADLETTER, kind)
    if kind == "tombstone":
        value = draw(st.sampled_from([None, b""]))
        if value is None and key is None:
            key = b"p1:s1"  # a tombstone has a key: Kafka takes no record without both
        return Hostile(stream, key, value, DEADLETTER, kind)
    base[draw(st.text(max_size=10))] = draw(JSON_VALUES)  # an extra field of any shape
    return Hostile(stream, key, _dumps(base), ANY, kind)


def generate(n: int) -> list[Hostile]:
    """``n`` records (fewer if hypothesis runs dry), the same ones on every run."""
    batch: list[Hostile] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile())
    def collect(record: Hostile) -> None:
        batch.append(record)

    collect()
    return batch


# -- the test ----------------------------------------------------------------------------


topics = topics_fixture(PARTITIONS)


async def produce_all(bootstrap: str, topics: Topics, batch: list[Hostile]) -> list[SourcePosition]:
    """Produce the batch; the position each record landed at, in batch order."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=1_048_576
    )
    await producer.start()
    try:
        futures = []
        for record in batch:
            topic = topics.calls if record.stream is Stream.CALLS else topics.web
            # aiokafka takes no record whose key and value are both empty: give it a key
            key = record.key if (record.key or record.value) else b"p1:s1"
            futures.append(await producer.send(topic, record.value, key=key))
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [SourcePosition(m.topic, m.partition, m.offset) for m in metadata]


async def read_to_end(bootstrap: str, topic: str, within: float = 60.0) -> list[dict[str, Any]]:
    """Every record of ``topic`` up to its end offsets now, as JSON."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + within
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"{topic} not read to its end in {within} s"
            batch = await consumer.getmany(timeout_ms=300, max_records=2000)
            for records in batch.values():
                out.extend(orjson.loads(r.value) for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return out


def source_of(record: dict[str, Any]) -> SourcePosition:
    s = record["source"]
    return SourcePosition(s["topic"], s["partition"], s["offset"])


def test_hostile_batch_every_input_processed_or_dead_lettered_once(
    kafka_bootstrap: str, topics: Topics, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    batch = generate(N_RECORDS)
    assert len(batch) >= N_RECORDS * 0.9, len(batch)
    kinds = {r.kind for r in batch}
    assert len(kinds) >= 15, kinds  # every generator is represented

    store = RedisStore.from_url(redis_url, prefix=key_prefix)
    store.upsert(INDICATORS)
    # the verdict of the pure core on each record, against the snapshot the worker loads
    core_matcher = Matcher.build(store.snapshot())
    expected = RecordProcessor(
        matcher=lambda: core_matcher,
        alerts_topic=topics.alerts,
        deadletter_topic=topics.deadletter,
        max_record_bytes=MAX_RECORD_BYTES,
        max_output_bytes=1_000_000,
    )

    worker = WorkerProcess(
        topics,
        key_prefix,
        tmp_path,
        extra_env={"SCAMWATCH_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES)},
    ).start()
    try:
        worker.wait_assigned()
        positions = asyncio.run(produce_all(kafka_bootstrap, topics, batch))
        assert len(set(positions)) == len(batch)
        stream_of = {Stream.CALLS: topics.calls, Stream.WEB: topics.web}
        inputs = [topics.calls, topics.web]
        by_stream = {s: sum(1 for r in batch if r.stream is s) for s in Stream}
        assert all(by_stream.values()), by_stream

        def all_counted(m: MetricsScrape) -> bool:
            return m.total("scamwatch_events_total") >= len(batch)

        worker.wait_metric(all_counted, timeout=180)
        # every input committed, which the worker does once its outputs are delivered
        deadline = time.monotonic() + 60
        while sum(asyncio.run(group_lag(kafka_bootstrap, topics.app_id, inputs)).values()):
            assert time.monotonic() < deadline, f"inputs not all committed\n{worker.log_tail()}"
            time.sleep(0.5)
        metrics = worker.metrics()
        assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()

        outcomes = [
            expected.process(r.stream, r.value, r.key, SourcePosition(stream_of[r.stream], 0, 0))
            for r in batch
        ]
        want_dead = {p for p, o in zip(positions, outcomes, strict=True) if o.kind == "deadletter"}
        want_matched = {p for p, o in zip(positions, outcomes, strict=True) if o.kind == "matched"}
        for record, position, outcome in zip(batch, positions, outcomes, strict=True):
            if record.expect == DEADLETTER:
                assert outcome.kind == "deadletter", (
                    record.kind,
                    record.value[:200] if record.value else None,
                )
            elif record.expect == PROCESSED:
                assert outcome.kind != "deadletter", (record.kind, outcome.reason, position)

        # the metrics: every input counted once, by stream and outcome
        for stream in Stream:
            counted = metrics.total("scamwatch_events_total", stream=stream.value)
            assert counted == by_stream[stream], (stream, counted, by_stream[stream])
        assert metrics.total("scamwatch_events_total", outcome="deadletter") == len(want_dead)
        assert metrics.total("scamwatch_events_total", outcome="matched") == len(want_matched)
        assert metrics.total("scamwatch_deadletter_total") == len(want_dead)

        # the topics: one dead letter per dead-lettered input, from exactly those positions
        dead = asyncio.run(read_to_end(kafka_bootstrap, topics.deadletter))
        dead_sources = [source_of(d) for d in dead]
        assert len(dead_sources) == len(set(dead_sources)), "an input dead-lettered twice"
        assert set(dead_sources) == want_dead
        want_reasons = {
            p: o.reason for p, o in zip(positions, outcomes, strict=True) if o.kind == "deadletter"
        }
        assert {source_of(d): d["reason"] for d in dead} == want_reasons
        assert all(d["stream"] in ("calls", "web") and d["error"] for d in dead)
        # the alerts of inputs (a discovered_scam_number alert's source is a sighting: the
        # discover agent runs too, and whether exposures are read before calls is timing)
        alerts = [
            a
            for a in asyncio.run(read_to_end(kafka_bootstrap, topics.alerts))
            if a["source"]["topic"] in inputs
        ]
        alert_sources = {source_of(a) for a in alerts}
        assert alert_sources == want_matched
        assert not alert_sources & set(dead_sources)  # processed or dead-lettered, never both

        # still up: alive, and /metrics answers with the same counts
        assert worker.proc.poll() is None, worker.log_tail()
        again = worker.metrics()
        assert again.total("scamwatch_events_total") == len(batch)
        print(
            f"{len(batch)} hostile records: {len(want_dead)} dead-lettered, "
            f"{len(want_matched)} matched, {len(batch) - len(want_dead) - len(want_matched)} clean"
        )
    finally:
        worker.kill()
