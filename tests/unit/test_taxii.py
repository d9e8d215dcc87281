"""The pure parts of TAXII pulls: --added-after, the later of two server times, the short
cause of a connection error, and the TAXII settings."""

from __future__ import annotations

import pytest
import requests

from engine.errors import ConfigError
from engine.settings import load_settings
from engine.taxii import _reason, later, parse_added_after


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("2026-11-30T12:00:00Z", "2026-11-30T12:00:00.000000Z"),
        ("2026-11-30t12:00:00.5z", "2026-11-30T12:00:00.500000Z"),
        ("2026-11-30T14:00:00+02:00", "2026-11-30T12:00:00.000000Z"),
        ("2026-11-30", "2026-11-30T00:00:00.000000Z"),  # a date: its midnight UTC
    ],
)
def test_added_after_is_sent_as_utc(given: str, sent: str) -> None:
    assert parse_added_after(given) == sent


def test_added_after_that_is_no_time_says_so() -> None:
    with pytest.raises(ValueError, match="'yesterday' is not an RFC 3339 date-time"):
        parse_added_after("yesterday")


def test_later_compares_times_not_strings() -> None:
    # the same instant written at two precisions, and an offset-less one read as UTC
    assert later("2026-01-01T00:00:00.9Z", "2026-01-01T00:00:00.123456Z") == (
        "2026-01-01T00:00:00.9Z"
    )
    assert later(None, "2026-01-01T00:00:00Z") == "2026-01-01T00:00:00Z"
    assert later("2026-01-01T00:00:01", "2026-01-01T00:00:00Z") == "2026-01-01T00:00:01"
    assert later(None, None) is None


def test_reason_is_the_cause_not_the_pool_dump() -> None:
    wrapped = requests.exceptions.ConnectionError(
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /api1/ "
        "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed to "
        "establish a new connection: [Errno 111] Connection refused'))"
    )
    assert _reason(wrapped) == "Connection refused"
    tls = requests.exceptions.SSLError(
        "(Caused by SSLError(SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version number "
        "(_ssl.c:1006)')))"
    )
    assert _reason(tls) == "wrong version number"
    assert _reason(requests.exceptions.Timeout("read timed out")) == "Timeout"


def test_taxii_password_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAMWATCH_TAXII_USERNAME", "analyst")
    monkeypatch.setenv("SCAMWATCH_TAXII_PASSWORD", "hunter2")
    monkeypatch.setenv("SCAMWATCH_TAXII_CAFILE", "/etc/ssl/isac-ca.pem")
    settings = load_settings()
    assert settings.taxii.username == "analyst"
    assert settings.taxii.password is not None
    assert settings.taxii.password.get_secret_value() == "hunter2"
    assert settings.taxii.cafile == "/etc/ssl/isac-ca.pem"
    shown = settings.redacted()
    assert shown["SCAMWATCH_TAXII_PASSWORD"] == "**********"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(shown)


def test_taxii_password_without_user_names_the_user_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SCAMWATCH_TAXII_USERNAME", raising=False)
    monkeypatch.setenv("SCAMWATCH_TAXII_PASSWORD", "hunter2")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.setting == "SCAMWATCH_TAXII_USERNAME"


def test_a_server_that_never_answers_times_out_naming_the_setting() -> None:
    """A real listening socket that accepts connections (the kernel's backlog) and never
    sends a byte: the pull stops after SCAMWATCH_TAXII_TIMEOUT_SECONDS, it does not hang."""
    import socket
    import threading

    from engine.errors import FeedServerUnavailable
    from engine.settings import TaxiiSettings
    from engine.taxii import open_collection

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        raised: list[BaseException] = []

        def pull() -> None:
            try:
                open_collection(
                    f"http://127.0.0.1:{port}/api1/", "c1", TaxiiSettings(timeout_seconds=0.5)
                )
            except BaseException as exc:
                raised.append(exc)

        worker = threading.Thread(target=pull, daemon=True)
        worker.start()
        worker.join(timeout=30)  # bounded: without a timeout it would never return
        assert not worker.is_alive(), "the TAXII request did not time out"
    assert len(raised) == 1 and isinstance(raised[0], FeedServerUnavailable), raised
    assert "did not answer within 0.5 s" in str(raised[0])
    assert "SCAMWATCH_TAXII_TIMEOUT_SECONDS" in str(raised[0])


def test_taxii_connection_internals_are_the_ones_the_timeout_uses() -> None:
    """The request timeout rides on taxii2-client's private connection class: this fails when
    an upgrade changes what engine/taxii.py's ``_connection`` relies on (the class, its
    keyword arguments, its requests ``Session``, and every request going through it)."""
    import inspect

    import requests
    import taxii2client.common

    from engine.settings import TaxiiSettings
    from engine.taxii import _BasicAuthSeeingHeaders, _connection, _TimeoutAdapter

    cls = taxii2client.common._HTTPConnection
    params = inspect.signature(cls.__init__).parameters
    assert {"verify", "auth", "version"} <= params.keys(), params
    source = inspect.getsource(cls)
    assert "self.session.request(" in source or "self.session.get(" in source, (
        "taxii2-client no longer sends its requests through self.session: re-check the timeout"
    )
    kwargs = _connection(_BasicAuthSeeingHeaders("u", "p"), TaxiiSettings(timeout_seconds=7))
    conn = kwargs["conn"]  # the timeout path, not the public fallback
    assert isinstance(conn.session, requests.Session)
    adapter = conn.session.get_adapter("https://taxii.example/api1/")
    assert isinstance(adapter, _TimeoutAdapter) and adapter.timeout == 7


def test_without_the_known_connection_the_pull_uses_the_public_arguments(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import taxii2client.common

    from engine.settings import TaxiiSettings
    from engine.taxii import _BasicAuthSeeingHeaders, _connection

    monkeypatch.delattr(taxii2client.common, "_HTTPConnection")
    auth = _BasicAuthSeeingHeaders("u", "p")
    with caplog.at_level("WARNING"):
        kwargs = _connection(auth, TaxiiSettings(cafile="/etc/ca.pem"))
    assert kwargs == {"auth": auth, "verify": "/etc/ca.pem"}
    assert "without SCAMWATCH_TAXII_TIMEOUT_SECONDS" in caplog.text
