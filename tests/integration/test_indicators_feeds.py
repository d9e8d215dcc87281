"""The public lists as published, loaded through ``scamwatch indicators load`` into the real
local Redis (a key prefix of each test's own): counts in the summary, values in the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import typer
from click.testing import Result
from rich.console import Console
from typer.testing import CliRunner

from engine.cli import indicators
from engine.core.models import IndicatorType
from engine.store.redis import RedisStore

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
Invoke = Callable[..., Result]
T = IndicatorType


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """test root"""

    indicators.register(root)
    return root


@pytest.fixture
def run(app: typer.Typer, key_prefix: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    monkeypatch.setattr(indicators, "console", Console(width=240))
    monkeypatch.setattr(indicators, "err_console", Console(stderr=True, width=240))
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            app, ["indicators", "--prefix", key_prefix, *args], catch_exceptions=False
        )

    yield invoke


def _row(table: str, name: str) -> str:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0] == name:
            return cells[1]
    raise AssertionError(f"no row {name!r} in\n{table}")


# feed, extra options, format shown, loaded, invalid, skipped, (type, value) in the store
CASES = [
    (
        "scam_hosts.txt",
        [],
        "hosts",
        6,
        1,
        0,
        [(T.DOMAIN, "windows-defender-helpline.example"), (T.DOMAIN, "ipv6-sink.example")],
    ),
    (
        "openphish_feed.txt",
        [],
        "urls",
        4,
        1,
        0,
        [(T.URL, "amazon-prime-renewal.example/billing")],
    ),
    (
        "urlhaus_csv.txt",
        [],
        "urlhaus",
        3,
        1,
        0,
        [(T.URL, "198.51.100.7:47612/i"), (T.URL, "fake-invoice.example/docs/Invoice_2026.zip")],
    ),
    (
        "phishtank_online_valid.csv",
        [],
        "phishtank",
        3,
        1,
        0,
        [(T.URL, "login-microsoftonline.example/common/login?x=1,2")],
    ),
    (
        "ftc_dnc_complaints.csv",
        [],
        "ftc-dnc",
        3,
        2,
        0,
        [(T.PHONE, "+18885550142"), (T.PHONE, "+18005550199"), (T.PHONE, "+18775550123")],
    ),
    (
        "partner_numbers.csv",
        ["--map", "value=Reported Number", "--map", "type=phone", "--region", "GB"],
        "csv",
        2,
        1,
        0,
        [(T.PHONE, "+442079460958"), (T.PHONE, "+442079460959")],
    ),
    (
        "isac_bundle.stix2",
        [],
        "stix",
        2,
        1,
        3,
        [(T.DOMAIN, "norton-renewal-desk.example"), (T.URL, "geek-squad-billing.example/refund")],
    ),
    (
        "misp_pymisp_event.json",
        [],
        "misp",
        5,
        1,
        5,
        [(T.DOMAIN, "refund-desk.example"), (T.URL, "refund-portal.example/claim?ref=mail")],
    ),
    (
        "misp_search_response.json",
        [],
        "misp",
        3,
        0,
        2,
        [(T.PHONE, "+12025550170"), (T.DOMAIN, "popup-warning.example")],
    ),
]


@pytest.mark.parametrize(
    ("feed", "extra", "fmt", "loaded", "invalid", "skipped", "expected"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_each_published_format_loads_as_published(
    run: Invoke,
    redis_client: redis.Redis,
    key_prefix: str,
    feed: str,
    extra: list[str],
    fmt: str,
    loaded: int,
    invalid: int,
    skipped: int,
    expected: list[tuple[IndicatorType, str]],
) -> None:
    result = run("load", str(FEEDS / feed), *extra)
    assert result.exit_code == 0, result.output
    assert f"{feed} ({fmt})" in result.stdout  # the format told from the content
    assert _row(result.stdout, "loaded (added / updated)") == f"{loaded} ({loaded} / 0)"
    assert _row(result.stdout, "invalid") == str(invalid)
    assert _row(result.stdout, "skipped (not matched by scamwatch)") == str(skipped)
    assert sum(line.startswith("invalid ") for line in result.stderr.splitlines()) == invalid
    store = RedisStore(redis_client, prefix=key_prefix)
    assert store.version() == loaded
    entries = {(i.type, i.value): i for i in store.iter()}
    assert len(entries) == loaded
    for key in expected:
        assert key in entries, (key, sorted(entries))


def test_ftc_numbers_one_indicator_each_with_reports_and_subjects(
    run: Invoke, redis_client: redis.Redis, key_prefix: str
) -> None:
    # a UK default region: the FTC's numbers are still read as US numbers
    result = run("load", str(FEEDS / "ftc_dnc_complaints.csv"), "--region", "GB")
    assert result.exit_code == 0, result.output
    store = RedisStore(redis_client, prefix=key_prefix)
    often = store.get(T.PHONE, "+18885550142")
    assert often is not None
    assert often.confidence == 70  # four complaints
    assert "Computer & technical support" in often.tags and "ftc-dnc" in often.tags
    once = store.get(T.PHONE, "+18775550123")
    assert once is not None and once.confidence == 40


def test_strict_still_loads_a_feed_whose_only_oddities_are_skipped(
    run: Invoke, redis_client: redis.Redis, key_prefix: str
) -> None:
    result = run("load", str(FEEDS / "misp_search_response.json"), "--strict")
    assert result.exit_code == 0, result.output
    assert "skipped 1 × MISP attribute type 'ip-src' not matched" in result.stderr
    assert RedisStore(redis_client, prefix=key_prefix).version() == 3
    refused = run("load", str(FEEDS / "misp_pymisp_event.json"), "--strict")
    assert refused.exit_code == 1 and "nothing written" in refused.stderr  # a bad domain


def test_a_csv_of_other_columns_needs_a_mapping(
    run: Invoke, redis_client: redis.Redis, key_prefix: str
) -> None:
    result = run("load", str(FEEDS / "partner_numbers.csv"))
    assert result.exit_code == 2
    assert "--map value=COLUMN" in result.stderr
    bad_map = run("load", str(FEEDS / "partner_numbers.csv"), "--map", "phone=Reported Number")
    assert bad_map.exit_code == 2 and "not an indicator.v1 field" in bad_map.stderr
    wrong = run("load", str(FEEDS / "partner_numbers.csv"), "--map", "value=x", "--format", "stix")
    assert wrong.exit_code == 2 and "--map reads a CSV" in wrong.stderr
    assert list(redis_client.scan_iter(match=f"{key_prefix}*")) == []


def test_format_option_overrides_the_content(
    run: Invoke, redis_client: redis.Redis, key_prefix: str
) -> None:
    # read as plain text of URLs, the OpenPhish list gives the same values
    result = run("load", str(FEEDS / "openphish_feed.txt"), "--format", "txt", "--type", "url")
    assert result.exit_code == 0, result.output
    assert "openphish_feed.txt (txt)" in result.stdout
    assert RedisStore(redis_client, prefix=key_prefix).version() == 4
