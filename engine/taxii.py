"""TAXII 2.1 pulls (``taxii2-client``): one collection's objects, page by page.

A TAXII 2.1 server answers each page of ``Get Objects`` with an envelope (``objects``,
``more``, ``next``) and the ``X-TAXII-Date-Added-Last`` header: when the last object of the
page was added to the collection. Asking again with ``added_after`` set to the latest such
time gives only what was added since; :class:`engine.store.positions.PullPositions`
remembers it between pulls. Every failure of the server (unreachable, 401, unknown
collection) is one :class:`FeedServerError` saying what to fix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import requests
import requests.auth
import taxii2client.common
from requests.adapters import HTTPAdapter
from taxii2client.exceptions import AccessError, TAXIIServiceException
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from engine.errors import FeedServerError, FeedServerUnavailable
from engine.settings import TaxiiSettings

log = logging.getLogger(__name__)

PAGE_SIZE = 1_000  # objects asked per page; servers cap it (as_pages then asks what they give)
DATE_ADDED_LAST = "X-TAXII-Date-Added-Last"


@dataclass(frozen=True, slots=True)
class TaxiiPage:
    """One page of a collection: its objects and when the last of them was added."""

    objects: list[Any]
    date_added_last: str | None


def parse_added_after(text: str) -> str:
    """An ``--added-after`` time (RFC 3339, or a date meaning its midnight UTC) → the UTC
    timestamp sent to the server; ValueError says why not."""
    try:
        moment = datetime.fromisoformat(text.strip().upper())
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 date-time (2026-11-30T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}Z"


def later(a: str | None, b: str | None) -> str | None:
    """The later of two TAXII timestamps (None is earlier than any)."""
    if a is None or b is None:
        return a or b
    return a if _moment(a) >= _moment(b) else b


def _is_timestamp(text: str) -> bool:
    try:
        _moment(text)
    except ValueError:
        return False
    return True


def _moment(timestamp: str) -> datetime:
    moment = datetime.fromisoformat(timestamp.strip().upper())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _BasicAuthSeeingHeaders(requests.auth.AuthBase):
    """HTTP basic auth (when configured) that also keeps the last response's
    ``X-TAXII-Date-Added-Last``: taxii2-client hands back the parsed envelope only, so the
    header is read by a response hook (requests' public hook API) registered here."""

    def __init__(self, username: str | None, password: str | None) -> None:
        self._basic = (
            requests.auth.HTTPBasicAuth(username, password or "") if username is not None else None
        )
        self.date_added_last: str | None = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._basic is not None:
            request = self._basic(request)
        request.register_hook("response", self._seen)
        return request

    def _seen(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.date_added_last = response.headers.get(DATE_ADDED_LAST)


class _TimeoutAdapter(HTTPAdapter):
    """requests' adapter with a timeout on every request (taxii2-client sets none, so a
    server that accepts the connection and never answers would hang the pull forever)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def _connection(auth: _BasicAuthSeeingHeaders, settings: TaxiiSettings) -> dict[str, Any]:
    """The keyword arguments that give taxii2-client's ``ApiRoot``/``Server`` our auth, CA and
    request timeout.

    taxii2-client has no timeout setting, and a server that accepts the connection and never
    answers hangs a pull forever (tests/unit/test_taxii.py shows it with a real socket). Its
    ``conn=`` argument takes its connection class, ``_HTTPConnection``, whose ``session`` is a
    requests ``Session``: the timeout is a requests adapter mounted on it. That class is
    private, so when it is not the one this was written against (checked by
    ``test_taxii_connection_internals_are_the_ones_the_timeout_uses``), the pull goes through
    the public arguments (``auth=``, ``verify=``) without a timeout, and says so."""
    verify: bool | str = settings.cafile or True
    connection_class = getattr(taxii2client.common, "_HTTPConnection", None)
    try:
        if connection_class is None:
            raise AttributeError("taxii2client.common has no _HTTPConnection")
        conn = connection_class(verify=verify, auth=auth, version="2.1")
        session = conn.session
        if not isinstance(session, requests.Session):
            raise TypeError(f"its session is a {type(session).__name__}, not a requests Session")
    except (AttributeError, TypeError) as exc:
        log.warning(
            "taxii2-client's connection is not the one scamwatch knows (%s): pulling without "
            "SCAMWATCH_TAXII_TIMEOUT_SECONDS",
            exc,
        )
        return {"auth": auth, "verify": verify}
    adapter = _TimeoutAdapter(settings.timeout_seconds)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return {"conn": conn}


class TaxiiCollection:
    """One readable collection of a TAXII 2.1 API root, opened by :func:`open_collection`."""

    def __init__(
        self,
        api_root: ApiRoot,
        collection: Collection,
        auth: _BasicAuthSeeingHeaders,
        settings: TaxiiSettings,
    ) -> None:
        self._api_root = api_root
        self._collection = collection
        self._auth = auth
        self._settings = settings
        self.api_root_url: str = api_root.url
        self.url: str = collection.url
        self.id: str = collection.id
        self.title: str = collection.title
        self.alias: str | None = collection.alias

    def pages(self, *, added_after: str | None, page_size: int = PAGE_SIZE) -> Iterator[TaxiiPage]:
        """The collection's objects added after ``added_after`` (all when None), a page at a
        time, in the order the server added them."""
        # as_pages warns (on stderr, without a handler) each time a server caps the page size
        logging.getLogger("taxii2client.v21").setLevel(logging.ERROR)
        not_found = f"collection {self.id!r} is no longer at {self.api_root_url}"
        with _server_errors(self.api_root_url, self._settings, self.id, not_found=not_found):
            for envelope in as_pages(
                self._collection.get_objects, per_request=page_size, added_after=added_after
            ):
                if not isinstance(envelope, dict):
                    raise FeedServerError(f"{self.url}: a page that is not a TAXII envelope")
                objects = envelope.get("objects") or []
                if not isinstance(objects, list):
                    raise FeedServerError(f"{self.url}: an envelope whose objects are no list")
                last = self._auth.date_added_last if objects else None
                yield TaxiiPage(objects, last if last and _is_timestamp(last) else None)

    def close(self) -> None:
        self._api_root.close()

    def __enter__(self) -> TaxiiCollection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_collection(url: str, collection: str, settings: TaxiiSettings) -> TaxiiCollection:
    """The collection ``collection`` (its id or alias) of the API root at ``url``, with the
    credentials and CA of ``settings``; FeedServerError when it cannot be read."""
    password = settings.password.get_secret_value() if settings.password is not None else None
    auth = _BasicAuthSeeingHeaders(settings.username, password)
    api_root = ApiRoot(url, **_connection(auth, settings))
    try:
        not_found = f"no TAXII 2.1 API root at {api_root.url}"
        with _server_errors(api_root.url, settings, collection, not_found=not_found):
            try:
                known = list(api_root.collections)
            except requests.exceptions.HTTPError as exc:
                roots = _discovered_api_roots(url, auth, settings) if _status(exc) == 404 else []
                if roots:
                    raise FeedServerError(
                        f"{api_root.url} is a TAXII discovery endpoint, not an API root; "
                        f"pull from one of its API roots: {', '.join(roots)}"
                    ) from None
                raise
            found = [c for c in known if collection in (c.id, c.alias)]
            if not found:
                names = ", ".join(f"{c.id} ({c.title})" for c in known) or "none"
                raise FeedServerError(
                    f"no collection {collection!r} at {api_root.url} (collections there: {names})"
                )
            opened = TaxiiCollection(api_root, found[0], auth, settings)
            if not found[0].can_read:
                raise FeedServerError(
                    f"collection {collection!r} at {api_root.url} may not be read "
                    f"by {_who(settings)}"
                )
            return opened
    except BaseException:
        api_root.close()
        raise


def _discovered_api_roots(
    url: str, auth: _BasicAuthSeeingHeaders, settings: TaxiiSettings
) -> list[str]:
    """The API roots ``url`` lists when it is a TAXII 2.1 discovery endpoint, else []."""
    try:
        with Server(url, **_connection(auth, settings)) as server:
            return [str(root.url) for root in server.api_roots]
    except (requests.exceptions.RequestException, TAXIIServiceException, ValueError):
        return []


def _status(exc: requests.exceptions.HTTPError) -> int:
    return exc.response.status_code if exc.response is not None else 0


def _who(settings: TaxiiSettings) -> str:
    return f"user {settings.username!r}" if settings.username else "anonymous users"


# the cause inside requests' wrapped messages: "[Errno 111] Connection refused", "[SSL: X] y"
_CAUSE = re.compile(r"\[(?:Errno -?\d+|SSL: [A-Z_]+)\] ([^'\"()]+)")


@contextmanager
def _server_errors(
    url: str, settings: TaxiiSettings, collection: str, *, not_found: str
) -> Iterator[None]:
    """requests / taxii2-client failures → one FeedServerError saying what to fix
    (``not_found``: what an HTTP 404 means here)."""
    try:
        yield
    except requests.exceptions.SSLError as exc:
        if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
            raise FeedServerUnavailable(f"no TLS with {url} ({_reason(exc)})") from None
        raise FeedServerError(
            f"the TLS certificate of {url} is not trusted ({_reason(exc)}): set it to the CA "
            "that signed it",
            source=TaxiiSettings.env_name("cafile"),
        ) from None
    except requests.exceptions.Timeout:
        raise FeedServerUnavailable(
            f"the TAXII server at {url} did not answer within {settings.timeout_seconds:g} s",
            source=TaxiiSettings.env_name("timeout_seconds"),
        ) from None
    except requests.exceptions.ConnectionError as exc:
        raise FeedServerUnavailable(
            f"cannot reach the TAXII server at {url} ({_reason(exc)})"
        ) from None
    except requests.exceptions.HTTPError as exc:
        raise _http_error(exc, url, settings, collection, not_found) from None
    except AccessError:
        raise FeedServerError(
            f"collection {collection!r} at {url} may not be read by {_who(settings)}"
        ) from None
    except TAXIIServiceException as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FeedServerError(f"{url} does not answer as a TAXII 2.1 API root: {first}") from None


def _http_error(
    exc: requests.exceptions.HTTPError,
    url: str,
    settings: TaxiiSettings,
    collection: str,
    not_found: str,
) -> FeedServerError:
    response = exc.response
    status = _status(exc)
    if status == 401:
        if not settings.username:
            return FeedServerError(
                f"the TAXII server at {url} asks for credentials (HTTP 401) and none is set",
                source=TaxiiSettings.env_name("username"),
            )
        return FeedServerError(
            f"the TAXII server at {url} refused the password of user {settings.username!r} "
            f"(HTTP 401; the user is {TaxiiSettings.env_name('username')})",
            source=TaxiiSettings.env_name("password"),
        )
    if status == 403:
        return FeedServerError(
            f"{_who(settings)} may not read collection {collection!r} at {url} (HTTP 403)"
        )
    if status == 404:
        return FeedServerError(f"{not_found} (HTTP 404{_detail(response)})")
    return FeedServerError(f"the TAXII server at {url} answered HTTP {status}{_detail(response)}")


def _detail(response: requests.Response | None) -> str:
    """The description of a TAXII error message, when the server sent one."""
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return ""
    description = body.get("description") if isinstance(body, dict) else None
    return f": {description}" if description else ""


def _reason(exc: BaseException) -> str:
    """The short cause of a requests error (``Connection refused``), not its pool dump."""
    found = _CAUSE.search(str(exc))
    if found:
        return found.group(1).strip()
    return type(exc).__name__
