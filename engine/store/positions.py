"""Where each pulled feed stopped, kept in Redis beside the indicators it loaded.

One hash ``P taxii:added_after`` (``P`` the store's prefix): field ``<API root URL>
<collection id>``, value the latest ``X-TAXII-Date-Added-Last`` a pull of that collection
saw, as the server wrote it (its own precision), so the next pull asks ``added_after`` it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis
import redis.exceptions
from redis.cluster import RedisCluster

from engine.errors import StoreUnavailable


class PullPositions:
    """The ``added_after`` of the next pull, per (TAXII API root URL, collection id)."""

    def __init__(self, client: redis.Redis | RedisCluster, *, prefix: str) -> None:
        self._client = client
        self.key = f"{prefix}taxii:added_after"

    @staticmethod
    def field(api_root_url: str, collection_id: str) -> str:
        return f"{api_root_url} {collection_id}"

    def get(self, api_root_url: str, collection_id: str) -> str | None:
        """The remembered position, None before the first pull that saw an object."""
        try:
            raw = self._client.hget(self.key, self.field(api_root_url, collection_id))
        except redis.exceptions.RedisError as exc:
            raise StoreUnavailable(f"Redis: {exc}", source=self.key) from None
        return raw.decode() if isinstance(raw, bytes) else raw

    def advance(self, api_root_url: str, collection_id: str, date_added: str) -> str:
        """Remember ``date_added`` unless a later one is remembered already (a pull with an
        older ``--added-after`` never moves it back); returns what is remembered."""
        current = self.get(api_root_url, collection_id)
        if current is not None and _moment(current) >= _moment(date_added):
            return current
        try:
            self._client.hset(self.key, self.field(api_root_url, collection_id), date_added)
        except redis.exceptions.RedisError as exc:
            raise StoreUnavailable(f"Redis: {exc}", source=self.key) from None
        return date_added


def _moment(timestamp: str) -> datetime:
    moment = datetime.fromisoformat(timestamp.strip().upper())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
