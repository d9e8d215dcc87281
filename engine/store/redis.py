"""The Redis indicator store (redis-py): the source of truth that every worker follows.

Key layout (``P`` is the prefix, ``scamwatch:`` by default; ``{i}`` is a Redis Cluster hash
tag, so that every key lives in one slot and the Lua scripts and MULTI blocks may touch them
together)::

    P{i}:ind:<type>     hash   normalized value -> entry (one hash per IndicatorType:
                               phone, phone_prefix, domain, url, keyword)
    P{i}:allow:<type>   hash   the allowlist, same shape, kept apart
    P{i}:version        string the version: +1 per changed entry; workers poll it (one GET)
    P{i}:changes        stream the change log: one stream entry per write (a batch of changes),
                               id ``<last version of the batch>-0``, fields ``n`` (how many
                               changes) and ``d`` (msgpack list of ``[op, allowlist 0|1, type,
                               value, entry]``, ``entry`` only for upserts; the i-th change has
                               version ``last - n + 1 + i``); trimmed with XTRIM MINID so that
                               at least the last ``change_log_size`` changes stay

An entry is a msgpack array (msgspec) ``[sources, severity, confidence, tags, valid_from,
valid_until, description, reference]``; type and value are the hash and field.

Writes are Lua scripts, so each batch is atomic and moves the version and the change log
with the entries. Upserts are optimistic: the client reads the current entries of a batch
(HMGET, pipelined), merges in Python (:meth:`Indicator.merge`), and the script writes only if
none of those entries changed meanwhile (compare-and-set on the bytes), else the client reads
again and retries: concurrent loaders never lose each other's updates. Only entries that
really change are sent, so reloading a feed leaves the version where it was. ``snapshot``
reads the version and every hash in one MULTI/EXEC, so it is consistent with one version.

A worker polls ``version()`` (one GET); when it moved, ``changes_since(v)`` (one XRANGE) gives
what changed, or None when the log no longer reaches back to ``v``: reload ``snapshot()``.

One URL serves a single Redis and a Redis Cluster alike: :meth:`RedisStore.from_url` asks the
URL's node (``INFO cluster``) and uses redis-py's cluster client when ``cluster_enabled`` is 1.
The hash tag puts every key in one slot, so the scripts and the snapshot's MULTI run on the
one master that owns it. The question is asked at the first use, not at construction, so a
worker started while Redis is down still starts (and waits for it).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any, cast

import msgspec
import redis
import redis.exceptions
from redis.cluster import RedisCluster
from redis.commands.core import Script

from engine.core.models import (
    Change,
    ChangeSet,
    Indicator,
    IndicatorSnapshot,
    IndicatorType,
    Severity,
)
from engine.errors import ConfigError, StoreError, StoreUnavailable
from engine.settings import RedisSettings
from engine.store.base import IndicatorStore, StoreStats, UpsertResult
from engine.store.merging import Key, is_expired, plan_upsert

DEFAULT_BATCH_SIZE = 5_000
_MAX_ATTEMPTS = 50  # optimistic retries of one batch before giving up
_TYPES: tuple[IndicatorType, ...] = tuple(IndicatorType)
_ABSENT = b""  # "no entry expected" in the compare-and-set (an entry is never empty)
URL_SETTING = "SCAMWATCH_REDIS_URL"  # named by the error a refused password raises
CA_SETTING = "SCAMWATCH_REDIS_CA_FILE"  # named by the error a refused certificate raises

Client = redis.Redis | RedisCluster
ClientFactory = Callable[[], Client]


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    """An indicator as stored, without its type and value (those are the hash and field)."""

    sources: tuple[str, ...]
    severity: Severity
    confidence: int
    tags: tuple[str, ...]
    valid_from: int | None
    valid_until: int | None
    description: str
    reference: str


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Entry)

# KEYS: version, changes, then the five hashes of one side (in _TYPES order).
# ARGV: log size, number of changes, change-log blob, number of groups, then per group (one
# hash): key index, m, m values, m expected entries ('' = absent), m new entries.
# Compare-and-set: if any entry is not as the client read it, nothing is written ({0}).
_UPSERT_LUA = """
local size = tonumber(ARGV[1])
local total = tonumber(ARGV[2])
local chunk = 1000  -- unpack() stays far below Lua's C stack limit
local groups = {}
local pos = 5
for g = 1, tonumber(ARGV[4]) do
  local key = KEYS[tonumber(ARGV[pos])]
  local m = tonumber(ARGV[pos + 1])
  local f0 = pos + 2
  for c = 0, m - 1, chunk do
    local last = math.min(c + chunk, m) - 1
    local current = redis.call('HMGET', key, unpack(ARGV, f0 + c, f0 + last))
    for i = c, last do
      if (current[i - c + 1] or '') ~= ARGV[f0 + m + i] then return {0} end
    end
  end
  groups[g] = {key, f0, m}
  pos = f0 + 3 * m
end
for _, group in ipairs(groups) do
  local key, f0, m = group[1], group[2], group[3]
  for c = 0, m - 1, chunk do
    local args = {}
    for i = c, math.min(c + chunk, m) - 1 do
      args[#args + 1] = ARGV[f0 + i]
      args[#args + 1] = ARGV[f0 + 2 * m + i]
    end
    redis.call('HSET', key, unpack(args))
  end
end
local version = redis.call('INCRBY', KEYS[1], total)
redis.call('XADD', KEYS[2], string.format('%d-0', version), 'n', total, 'd', ARGV[3])
redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', math.max(0, version - size + 1)))
return {1, version}
"""

# KEYS as above. ARGV: log size, allowlist flag, n, then n × (key index, value, expected, type);
# an empty ``expected`` removes whatever is there, else only that exact entry (purge)
_REMOVE_LUA = """
local size = tonumber(ARGV[1])
local allow = tonumber(ARGV[2])
local removed = {}
for j = 0, tonumber(ARGV[3]) - 1 do
  local b = 4 + j * 4
  local key = KEYS[tonumber(ARGV[b])]
  local current = redis.call('HGET', key, ARGV[b + 1])
  if current and (ARGV[b + 2] == '' or current == ARGV[b + 2]) then
    redis.call('HDEL', key, ARGV[b + 1])
    removed[#removed + 1] = {'remove', allow, ARGV[b + 3], ARGV[b + 1]}
  end
end
if #removed > 0 then
  local version = redis.call('INCRBY', KEYS[1], #removed)
  redis.call('XADD', KEYS[2], string.format('%d-0', version), 'n', #removed,
             'd', cmsgpack.pack(removed))
  redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', math.max(0, version - size + 1)))
end
return #removed
"""


@contextmanager
def _translated_errors() -> Iterator[None]:
    """redis-py errors → StoreUnavailable (retriable: Redis down or slow) or StoreError."""
    try:
        yield
    except redis.exceptions.AuthenticationError as exc:
        # not retriable: waiting does not fix a wrong password (redis-py's message holds none)
        raise ConfigError(
            URL_SETTING, f"Redis refused the user/password of the URL: {exc}"
        ) from None
    except redis.exceptions.ConnectionError as exc:
        if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
            raise StoreUnavailable(f"indicator store (Redis) unreachable: {exc}") from exc
        # not retriable either: the server's certificate is not signed by the CA we trust
        raise ConfigError(CA_SETTING, f"Redis's TLS certificate was not accepted: {exc}") from None
    except (
        redis.exceptions.TimeoutError,
        # a Redis Cluster with the slot's master down, or moving slots: retry later
        redis.exceptions.ClusterDownError,
        redis.exceptions.TryAgainError,
        redis.exceptions.MasterDownError,
    ) as exc:
        raise StoreUnavailable(f"indicator store (Redis) unreachable: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise StoreError(f"indicator store (Redis) failed: {exc}") from exc
    except redis.exceptions.RedisClusterException as exc:
        # not a RedisError: no node reachable, slots not (yet) covered, nodes disagreeing
        if isinstance(exc.__cause__, redis.exceptions.AuthenticationError):
            raise ConfigError(
                URL_SETTING, f"Redis refused the user/password of the URL: {exc.__cause__}"
            ) from None
        raise StoreUnavailable(f"indicator store (Redis Cluster) unavailable: {exc}") from exc


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while a million entries are built: its full passes would walk them all
    again and again (nothing built here forms a cycle)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def encode_entry(ind: Indicator) -> bytes:
    # same layout as _Entry (array_like), encoded from a tuple: no Struct to build
    return _ENCODER.encode(
        (
            ind.sources,
            ind.severity,
            ind.confidence,
            ind.tags,
            ind.valid_from,
            ind.valid_until,
            ind.description,
            ind.reference,
        )
    )


def decode_entry(type_: IndicatorType, value: str, raw: bytes) -> Indicator:
    try:
        entry = _DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise StoreError(f"corrupt entry {type_.value} {value!r} in Redis: {exc}") from exc
    return Indicator(
        type=type_,
        value=value,
        sources=entry.sources,
        severity=entry.severity,
        confidence=entry.confidence,
        tags=entry.tags,
        valid_from=entry.valid_from,
        valid_until=entry.valid_until,
        description=entry.description,
        reference=entry.reference,
    )


def connect(url: str, **kw: Any) -> Client:
    """A client for ``url``: redis-py's cluster client when the URL's node is in a Redis
    Cluster, else a plain one. ``kw`` goes to ``from_url`` of either."""
    with _translated_errors():
        probe = redis.Redis.from_url(url, **kw)
        try:
            clustered = int(probe.info("cluster").get("cluster_enabled", 0))
        except BaseException:
            probe.close()
            raise
        if not clustered:
            return probe
        probe.close()
        return RedisCluster.from_url(url, **kw)


class RedisStore(IndicatorStore):
    """Indicators in Redis hashes, with a version counter and a capped change-log stream.

    ``client`` (a single Redis or a Redis Cluster, or a factory called at the first use) must
    return bytes (``decode_responses=False``, the redis-py default)."""

    def __init__(
        self,
        client: Client | ClientFactory,
        *,
        prefix: str = "scamwatch:",
        change_log_size: int = 100_000,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if change_log_size < 1:
            raise ValueError("change_log_size must be at least 1")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._client: Client | None = None
        self._factory: ClientFactory | None = None
        if isinstance(client, redis.Redis | RedisCluster):
            self._use(client)
        else:
            self._factory = client
        self.prefix = prefix
        self.change_log_size = change_log_size
        self.batch_size = batch_size
        base = f"{prefix}{{i}}:"
        self.version_key = f"{base}version"
        self.changes_key = f"{base}changes"
        self._hashes = {
            side: tuple(f"{base}{'allow' if side else 'ind'}:{t.value}" for t in _TYPES)
            for side in (False, True)
        }

    def _use(self, client: Client) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise StoreError("RedisStore needs a client with decode_responses=False")
        self._scripts: tuple[Script, Script] = (
            client.register_script(_UPSERT_LUA),
            client.register_script(_REMOVE_LUA),
        )
        self._client = client

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "scamwatch:", **kw: Any) -> RedisStore:
        """A store for ``url`` (a single Redis or any node of a Redis Cluster, found out at
        the first use); ``change_log_size`` and ``batch_size`` go to the store, any other
        keyword to redis-py's ``from_url`` (e.g. ``ssl_ca_certs``)."""
        store_kw = {k: kw.pop(k) for k in ("change_log_size", "batch_size") if k in kw}
        kw.setdefault("socket_connect_timeout", 2)
        kw.setdefault("socket_timeout", 30)
        kw.setdefault("health_check_interval", 30)
        return cls(lambda: connect(url, **kw), prefix=prefix, **store_kw)

    @classmethod
    def from_settings(cls, settings: RedisSettings, **kw: Any) -> RedisStore:
        """The store the settings name: URL (credentials and TLS included), CA, prefix;
        ``kw`` as for :meth:`from_url` (``prefix`` too) wins over them."""
        options: dict[str, Any] = {"prefix": settings.prefix, **settings.client_options(), **kw}
        return cls.from_url(settings.url.get_secret_value(), **options)

    @property
    def client(self) -> Client:
        """The client, connected at the first use (StoreUnavailable while Redis is down)."""
        if self._client is None:
            assert self._factory is not None
            with _translated_errors():
                self._use(self._factory())
        assert self._client is not None
        return self._client

    @property
    def _upsert_script(self) -> Script:
        self.client  # noqa: B018 (connects at the first use)
        return self._scripts[0]

    @property
    def _remove_script(self) -> Script:
        self.client  # noqa: B018 (connects at the first use)
        return self._scripts[1]

    @property
    def clustered(self) -> bool:
        return isinstance(self.client, RedisCluster)

    def close(self) -> None:
        if self._client is not None:
            self.client.close()

    def keys(self) -> list[str]:
        """Every key this store may write (to delete them all, e.g. after a benchmark)."""
        return [self.version_key, self.changes_key, *self._hashes[False], *self._hashes[True]]

    def hash_key(self, type_: IndicatorType, *, allowlist: bool = False) -> str:
        return self._hashes[allowlist][_TYPES.index(type_)]

    # ------------------------------------------------------------------ writes

    def upsert(self, indicators: Iterable[Indicator], *, allowlist: bool = False) -> UpsertResult:
        added = updated = unchanged = 0
        iterator = iter(indicators)
        while batch := list(islice(iterator, self.batch_size)):
            result = self._upsert_batch(batch, allowlist)
            added += result.added
            updated += result.updated
            unchanged += result.unchanged
        return UpsertResult(added=added, updated=updated, unchanged=unchanged)

    def _upsert_batch(self, batch: Sequence[Indicator], allowlist: bool) -> UpsertResult:
        keys = [ind.key for ind in batch]
        distinct = list(dict.fromkeys(keys))
        with _translated_errors():
            for _ in range(_MAX_ATTEMPTS):
                raw = self._read_raw(distinct, allowlist)
                # fast path: an indicator stored exactly as given is unchanged (merging is
                # monotone, so it stays unchanged whatever else the batch does to the entry)
                todo = [
                    ind
                    for ind, key in zip(batch, keys, strict=True)
                    if raw[key] is None or raw[key] != encode_entry(ind)
                ]
                existing = {
                    ind.key: decode_entry(ind.type, ind.value, data)
                    for ind in todo
                    if (data := raw[ind.key]) is not None
                }
                plan = plan_upsert(todo, existing)
                result = UpsertResult(
                    added=plan.added,
                    updated=plan.updated,
                    unchanged=plan.unchanged + len(batch) - len(todo),
                )
                if not plan.writes:
                    return result
                outcome = self._upsert_script(
                    keys=self._script_keys(allowlist),
                    args=self._upsert_args(plan.writes, raw, allowlist),
                )
                if int(outcome[0]) == 1:
                    return result
                # another writer changed some of these entries meanwhile: read again, re-merge
        raise StoreError(
            f"upsert gave up after {_MAX_ATTEMPTS} attempts: entries kept changing under it"
        )

    def _upsert_args(
        self, writes: dict[Key, Indicator], raw: dict[Key, bytes | None], allowlist: bool
    ) -> list[bytes | str | int]:
        by_type: dict[IndicatorType, list[tuple[str, bytes, bytes]]] = {}
        changes: list[tuple[str, int, str, str, bytes]] = []
        flag = int(allowlist)
        for key, indicator in writes.items():
            entry = encode_entry(indicator)
            by_type.setdefault(key[0], []).append((key[1], raw.get(key) or _ABSENT, entry))
        args: list[bytes | str | int] = [self.change_log_size, len(writes), b"", len(by_type)]
        for type_, rows in by_type.items():
            args += [3 + _TYPES.index(type_), len(rows)]
            args += [value for value, _, _ in rows]
            args += [expected for _, expected, _ in rows]
            args += [entry for _, _, entry in rows]
            changes += [("upsert", flag, type_.value, value, entry) for value, _, entry in rows]
        args[2] = _ENCODER.encode(changes)  # the change log lists them in write order
        return args

    def _read_raw(self, keys: Sequence[Key], allowlist: bool) -> dict[Key, bytes | None]:
        by_type: dict[IndicatorType, list[str]] = {}
        for type_, value in keys:
            by_type.setdefault(type_, []).append(value)
        pipe = self.client.pipeline(transaction=False)
        order = list(by_type.items())
        for type_, values in order:
            pipe.hmget(self.hash_key(type_, allowlist=allowlist), values)
        replies = pipe.execute()
        out: dict[Key, bytes | None] = {}
        for (type_, values), reply in zip(order, replies, strict=True):
            for value, data in zip(values, reply, strict=True):
                out[(type_, value)] = data
        return out

    def remove(self, type_: IndicatorType, value: str, *, allowlist: bool = False) -> bool:
        return self._remove([(type_, value, _ABSENT)], allowlist) == 1

    def _remove(self, items: Sequence[tuple[IndicatorType, str, bytes]], allowlist: bool) -> int:
        removed = 0
        with _translated_errors():
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                args: list[bytes | str | int] = [self.change_log_size, int(allowlist), len(chunk)]
                for type_, value, expected in chunk:
                    args += [3 + _TYPES.index(type_), value, expected, type_.value]
                removed += int(self._remove_script(keys=self._script_keys(allowlist), args=args))
        return removed

    def purge_expired(self, at_ms: int) -> int:
        purged = 0
        for allowlist in (False, True):
            expired: list[tuple[IndicatorType, str, bytes]] = []
            for type_, value, raw in self._scan_raw(allowlist, None):
                if is_expired(decode_entry(type_, value, raw), at_ms):
                    expired.append((type_, value, raw))
            # only entries still as read are removed: one extended meanwhile stays
            purged += self._remove(expired, allowlist)
        return purged

    def _script_keys(self, allowlist: bool) -> list[str]:
        return [self.version_key, self.changes_key, *self._hashes[allowlist]]

    # ------------------------------------------------------------------ reads

    def get(self, type_: IndicatorType, value: str, *, allowlist: bool = False) -> Indicator | None:
        with _translated_errors():
            raw = cast(
                "bytes | None", self.client.hget(self.hash_key(type_, allowlist=allowlist), value)
            )
        return None if raw is None else decode_entry(type_, value, raw)

    def iter(
        self,
        *,
        type_: IndicatorType | None = None,
        source: str | None = None,
        allowlist: bool = False,
    ) -> Iterator[Indicator]:
        for t, value, raw in self._scan_raw(allowlist, type_):
            indicator = decode_entry(t, value, raw)
            if source is None or source in indicator.sources:
                yield indicator

    def _scan_raw(
        self, allowlist: bool, type_: IndicatorType | None
    ) -> Iterator[tuple[IndicatorType, str, bytes]]:
        """Every entry of one side, one hash at a time (HGETALL: no duplicates, unlike HSCAN)."""
        for t in _TYPES if type_ is None else (type_,):
            with _translated_errors():
                entries = cast(
                    "dict[bytes, bytes]",
                    self.client.hgetall(self.hash_key(t, allowlist=allowlist)),
                )
            for value, raw in entries.items():
                yield t, value.decode(), raw

    def version(self) -> int:
        with _translated_errors():
            raw = cast("bytes | None", self.client.get(self.version_key))
        return int(raw) if raw is not None else 0

    def snapshot(self) -> IndicatorSnapshot:
        with _translated_errors(), _gc_paused():
            pipe = self.client.pipeline(transaction=True)  # MULTI/EXEC: one version
            pipe.get(self.version_key)
            for side in (False, True):
                for key in self._hashes[side]:
                    pipe.hgetall(key)
            replies = pipe.execute()
            version = int(replies[0]) if replies[0] is not None else 0
            sides: list[tuple[Indicator, ...]] = []
            for offset in (1, 1 + len(_TYPES)):
                sides.append(
                    tuple(
                        decode_entry(t, value.decode(), raw)
                        for t, entries in zip(
                            _TYPES, replies[offset : offset + len(_TYPES)], strict=True
                        )
                        for value, raw in entries.items()
                    )
                )
        return IndicatorSnapshot(version=version, indicators=sides[0], allowlist=sides[1])

    def changes_since(self, version: int) -> ChangeSet | None:
        current = self.version()
        if version == current:
            return ChangeSet(from_version=version, to_version=current)
        if version > current or current - version > self.change_log_size:
            return None  # ahead of the store (it was reset) or older than the log keeps
        with _translated_errors():
            entries = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                self.client.xrange(self.changes_key, f"{version + 1}-0", f"{current}-0"),
            )
        changes = [
            change
            for entry_id, fields in entries
            for change in self._changes_of(entry_id, fields)
            if change.version > version
        ]
        if len(changes) != current - version or changes[0].version != version + 1:
            return None  # trimmed past ``version`` meanwhile
        return ChangeSet(from_version=version, to_version=current, changes=tuple(changes))

    @staticmethod
    def _changes_of(entry_id: bytes, fields: dict[bytes, bytes]) -> list[Change]:
        """The changes of one change-log entry (one write), with their versions."""
        last = int(entry_id.split(b"-", 1)[0])
        rows = msgspec.msgpack.decode(fields[b"d"])
        first = last - len(rows) + 1
        changes = []
        for offset, row in enumerate(rows):
            op, allow, type_name, value = row[0], row[1], row[2], row[3]
            type_ = IndicatorType(type_name)
            indicator = (
                decode_entry(type_, value, row[4])
                if op == "upsert"
                else Indicator(type=type_, value=value)
            )
            changes.append(Change(first + offset, op, bool(allow), indicator))
        return changes

    def stats(self, at_ms: int) -> StoreStats:
        by_type: dict[str, int] = {}
        by_source: dict[str, int] = {}
        allow_by_type: dict[str, int] = {}
        expired = 0
        for allowlist, counts in ((False, by_type), (True, allow_by_type)):
            for t, value, raw in self._scan_raw(allowlist, None):
                indicator = decode_entry(t, value, raw)
                counts[t.value] = counts.get(t.value, 0) + 1
                expired += is_expired(indicator, at_ms)
                if not allowlist:
                    for src in indicator.sources:
                        by_source[src] = by_source.get(src, 0) + 1
        return StoreStats(
            version=self.version(),
            by_type=by_type,
            by_source=by_source,
            allowlist_by_type=allow_by_type,
            expired=expired,
        )
