"""MISP events, in every form MISP exports them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine.core.feeds import (
    SkippedEntry,
    guess_format,
    read_feed,
)
from engine.core.models import IndicatorType, Severity
from engine.errors import FeedError
from tests.unit.core.feeds.feed_support import FEEDS, read_fixture_all, sort_items

T = IndicatorType


def test_misp_fixture_good_bad_and_skipped_attributes() -> None:
    good, bad, skipped = read_fixture_all("misp_event.json", source="misp-partner")
    assert [(i.type, i.value) for i in good] == [
        (T.PHONE, "+18775550123"),
        (T.DOMAIN, "amazon-refund-desk.example"),
        (T.DOMAIN, "support.windows-helpdesk.example"),  # hostname → domain
        (T.URL, "popup.example/alert?call=18005550199"),
        (T.URL, "amazon-refund.example/claim"),  # from the url object
    ]
    assert all(i.severity is Severity.MEDIUM for i in good)  # threat_level_id 2
    assert all(i.sources == ("misp-partner",) for i in good)
    assert good[0].description == "Call-back number shown in pop-ups"  # comment
    assert good[0].tags == ("microsoft", "tlp:green")  # attribute and event tags

    def by_id(items: list[FeedError] | list[SkippedEntry]) -> dict[str, str]:
        prefix = "attribute 5f0a0000-0000-4000-8000-0000000000"
        return {e.object_id.removeprefix(prefix): e.reason for e in items if e.object_id}

    invalid = by_id(bad)
    assert set(invalid) == {"a7"}  # only a value that is wrong is invalid
    assert invalid["a7"].startswith("value:")
    # valid MISP we do not match: an address, context attributes, one not for detection
    skips = by_id(skipped)
    assert set(skips) == {"a5", "a6", "a8", "b2"}
    assert skips["a5"] == "MISP attribute type 'ip-dst' not matched"
    assert skips["a6"] == "to_ids is false: MISP marks it as not for detection"
    assert skips["b2"] == "MISP attribute type 'port' not matched"  # inside an object


def test_misp_list_and_rest_response_forms(tmp_path: Path) -> None:
    event = orjson.loads((FEEDS / "misp_event.json").read_bytes())
    for document in ([event, event], {"response": [event]}):
        path = tmp_path / "events.json"
        path.write_bytes(orjson.dumps(document))
        assert guess_format(path) == "misp"
        good, _, _ = sort_items(list(read_feed(path)))
        assert len(good) == 5 * (2 if isinstance(document, list) else 1)


def test_misp_event_without_the_wrapper_attributes_inside_objects() -> None:
    good, bad, skipped = read_fixture_all("misp_pymisp_event.json")
    assert [(i.type, i.value) for i in good] == [
        (T.PHONE, "+18445550111"),
        (T.DOMAIN, "refund-desk.example"),  # domain|ip: the domain part, defanged
        (T.DOMAIN, "refund-portal.example"),  # in a domain-ip object
        (T.DOMAIN, "www.refund-portal.example"),
        (T.URL, "refund-portal.example/claim?ref=mail"),  # hxxps, [.]
    ]
    assert all(i.severity is Severity.HIGH and "tlp:amber" in i.tags for i in good)
    assert [e.reason.split(":")[0] for e in bad] == ["value"]  # "bad domain.example"
    # the AS numbers (for detection or not), the md5, the address and the port
    assert sorted(e.reason for e in skipped) == [
        "MISP attribute type 'AS' not matched",
        "MISP attribute type 'AS' not matched",
        "MISP attribute type 'ip-dst' not matched",
        "MISP attribute type 'md5' not matched",
        "MISP attribute type 'port' not matched",
    ]


def test_misp_search_api_response() -> None:
    good, bad, skipped = read_fixture_all("misp_search_response.json")
    assert [(i.type, i.value, i.severity) for i in good] == [
        (T.PHONE, "+12025550170", Severity.MEDIUM),
        (T.URL, "popup-warning.example/?tel=18885550142", Severity.LOW),
        (T.DOMAIN, "popup-warning.example", Severity.LOW),
    ]
    assert not bad and len(skipped) == 2


def test_json_that_is_no_event_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not.json"
    path.write_bytes(orjson.dumps({"info": "no attributes"}))
    with pytest.raises(FeedError, match="not a MISP event"):
        list(read_feed(path, format="misp"))
