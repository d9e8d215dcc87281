"""RedisStore against the real local Redis (a key prefix of each test's own), and the store
contract run against both RedisStore and MemoryStore so that they agree."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest
import redis

from engine.core.models import Indicator, IndicatorType, Severity
from engine.errors import StoreError, StoreUnavailable
from engine.store.memory import MemoryStore
from engine.store.merging import Key
from engine.store.redis import RedisStore
from tests.store_contract import MakeStore, StoreContract

T = IndicatorType


@pytest.fixture(params=["memory", "redis", "redis-url"])
def make_store(request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    kind: str = request.param

    def make(change_log_size: int = 100_000, batch_size: int = 5_000) -> MemoryStore | RedisStore:
        if kind == "memory":
            return MemoryStore(change_log_size=change_log_size)
        prefix: str = request.getfixturevalue("key_prefix")
        if kind == "redis-url":  # its client connects at the first use
            url: str = request.getfixturevalue("redis_url")
            return RedisStore.from_url(
                url, prefix=prefix, change_log_size=change_log_size, batch_size=batch_size
            )
        client: redis.Redis = request.getfixturevalue("redis_client")
        store = RedisStore(
            client, prefix=prefix, change_log_size=change_log_size, batch_size=batch_size
        )
        return store

    yield make


class TestStoreContract(StoreContract):
    """The shared behaviour, once per backend."""


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> RedisStore:
    return RedisStore(redis_client, prefix=key_prefix)


def test_every_key_is_under_the_prefix(
    store: RedisStore, redis_client: redis.Redis, key_prefix: str
) -> None:
    store.upsert([Indicator(T.PHONE, "+18005550199"), Indicator(T.DOMAIN, "a.example")])
    store.upsert([Indicator(T.DOMAIN, "microsoft.com")], allowlist=True)
    keys = {k.decode() for k in redis_client.scan_iter(match=f"{key_prefix}*")}
    assert keys == {
        store.version_key,
        store.changes_key,
        store.hash_key(T.PHONE),
        store.hash_key(T.DOMAIN),
        store.hash_key(T.DOMAIN, allowlist=True),
    }
    assert keys <= set(store.keys())
    assert all(k.startswith(f"{key_prefix}{{i}}:") for k in keys)  # one cluster slot


def test_version_is_one_plain_counter(store: RedisStore, redis_client: redis.Redis) -> None:
    store.upsert([Indicator(T.DOMAIN, "a.example"), Indicator(T.DOMAIN, "b.example")])
    assert redis_client.get(store.version_key) == b"2"
    assert store.version() == 2


def test_change_log_is_capped(redis_client: redis.Redis, key_prefix: str) -> None:
    store = RedisStore(redis_client, prefix=key_prefix, change_log_size=10, batch_size=7)
    store.upsert([Indicator(T.DOMAIN, f"d{i}.example") for i in range(25)])
    # one stream entry per write; whole entries are trimmed, keeping >= the last 10 changes
    kept = sum(int(fields[b"n"]) for _, fields in redis_client.xrange(store.changes_key))
    assert 10 <= kept < 10 + 7
    assert store.changes_since(14) is None
    tail = store.changes_since(15)
    assert tail is not None and len(tail.changes) == 10


def test_entries_survive_a_new_client(redis_url: str, key_prefix: str) -> None:
    writer = RedisStore.from_url(redis_url, prefix=key_prefix)
    ind = Indicator(
        T.URL,
        "evil.example/a?b=1",
        ("s1", "s2"),
        Severity.CRITICAL,
        99,
        ("t",),
        1_700_000_000_000,
        1_900_000_000_000,
        "déscription ✓",
        "https://example.org/r",
    )
    writer.upsert([ind])
    writer.close()
    reader = RedisStore.from_url(redis_url, prefix=key_prefix)
    assert reader.get(T.URL, ind.value) == ind
    assert reader.snapshot().indicators == (ind,)
    reader.close()


class _InterleavingStore(RedisStore):
    """Lets another writer change the entries between this store's read and its write,
    the race that compare-and-set must survive."""

    def __init__(
        self, *args: object, rival: RedisStore, rival_batch: list[Indicator], **kw: object
    ):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.reads = 0
        self._rival = rival
        self._rival_batch = rival_batch

    def _read_raw(self, keys: Sequence[Key], allowlist: bool) -> dict[Key, bytes | None]:
        raw = super()._read_raw(keys, allowlist)
        self.reads += 1
        if self.reads == 1:
            self._rival.upsert(self._rival_batch)  # lands after our read, before our write
        return raw


def test_concurrent_loaders_lose_no_update(redis_client: redis.Redis, key_prefix: str) -> None:
    rival = RedisStore(redis_client, prefix=key_prefix)
    rival_batch = [
        Indicator(T.PHONE, f"+1800555{i:04d}", ("rival",), Severity.LOW) for i in range(5)
    ]
    mine = _InterleavingStore(
        redis_client,
        prefix=key_prefix,
        rival=rival,
        rival_batch=rival_batch,
    )
    my_batch = [
        Indicator(T.PHONE, f"+1800555{i:04d}", ("mine",), Severity.CRITICAL) for i in range(3, 8)
    ]
    result = mine.upsert(my_batch)
    assert mine.reads == 2  # the first attempt was refused, the second re-read and merged
    assert (result.added, result.updated) == (3, 2)
    entries = {i.value: i for i in mine.iter()}
    assert len(entries) == 8
    for i in range(8):
        entry = entries[f"+1800555{i:04d}"]
        expected_sources = ("rival",) if i < 3 else ("mine", "rival") if i < 5 else ("mine",)
        assert entry.sources == expected_sources
        assert entry.severity is (Severity.LOW if i < 3 else Severity.CRITICAL)
    assert mine.version() == 5 + 5  # rival: 5 entries; mine: 5 entries (2 merged, 3 new)


class _ExtendingStore(RedisStore):
    """Another writer extends an expired entry between the purge's scan and its removal."""

    def _remove(self, items: Sequence[tuple[IndicatorType, str, bytes]], allowlist: bool) -> int:
        if items:
            self.upsert([Indicator(T.DOMAIN, "old.example", ("renewed",))])
        return super()._remove(items, allowlist)


def test_purge_keeps_an_entry_renewed_meanwhile(redis_client: redis.Redis, key_prefix: str) -> None:
    store = _ExtendingStore(redis_client, prefix=key_prefix)
    store.upsert([Indicator(T.DOMAIN, "old.example", ("a",), valid_until=1_000_000_000_000)])
    assert store.purge_expired(1_800_000_000_000) == 0
    entry = store.get(T.DOMAIN, "old.example")
    assert entry is not None and entry.valid_until is None and entry.sources == ("a", "renewed")


def test_threads_writing_the_same_entries(redis_url: str, key_prefix: str) -> None:
    def write(source: str) -> None:
        store = RedisStore.from_url(redis_url, prefix=key_prefix, batch_size=20)
        for _ in range(3):
            store.upsert(Indicator(T.PHONE, f"+1800555{i:04d}", (source,)) for i in range(60))
        store.close()

    threads = [threading.Thread(target=write, args=(f"s{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    reader = RedisStore.from_url(redis_url, prefix=key_prefix)
    entries = list(reader.iter())
    assert len(entries) == 60
    assert all(e.sources == ("s0", "s1", "s2") for e in entries)
    assert reader.version() == 180  # every (entry, source) pair changed the store once
    reader.close()


def test_snapshot_is_consistent_with_its_version(redis_url: str, key_prefix: str) -> None:
    """Each write adds one new entry (one version), so a consistent snapshot holds exactly
    ``version`` entries, whenever it is taken."""
    writer = RedisStore.from_url(redis_url, prefix=key_prefix)
    reader = RedisStore.from_url(redis_url, prefix=key_prefix)
    done = threading.Event()

    def write() -> None:
        for i in range(300):
            writer.upsert([Indicator(T.DOMAIN, f"d{i}.example")])
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    snapshots = 0
    while not done.is_set() or snapshots == 0:
        snap = reader.snapshot()
        assert len(snap.indicators) == snap.version
        snapshots += 1
    thread.join(timeout=60)
    final = reader.snapshot()
    assert final.version == 300 and len(final.indicators) == 300
    writer.close()
    reader.close()


def test_unreachable_redis_is_store_unavailable() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    with pytest.raises(StoreUnavailable) as info:
        store.version()
    assert info.value.retriable is True
    assert "unreachable" in str(info.value)
    with pytest.raises(StoreUnavailable):
        store.upsert([Indicator(T.DOMAIN, "a.example")])
    with pytest.raises(StoreUnavailable):
        list(store.iter())


def test_a_client_decoding_responses_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(StoreError, match="decode_responses"):
        RedisStore(client)
    client.close()
