"""MISP events, in every form MISP exports them."""

from __future__ import annotations

from pathlib import Path

import orjson

from engine.core.feeds import (
    guess_format,
    read_feed,
)
from engine.core.models import IndicatorType, Severity
from tests.unit.core.feeds.feed_support import FEEDS, read_fixture, split_items

T = IndicatorType


def test_misp_fixture_good_and_bad_attributes() -> None:
    good, bad = read_fixture("misp_event.json", source="misp-partner")
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
    reasons = {
        e.object_id.removeprefix("attribute 5f0a0000-0000-4000-8000-0000000000"): e.reason
        for e in bad
        if e.object_id
    }
    assert set(reasons) == {"a5", "a6", "a7"}  # the port and comment attributes are context
    assert reasons["a5"] == "type: unsupported MISP attribute type 'ip-dst'"
    assert reasons["a6"] == "to_ids is false: MISP marks it as not for detection"
    assert reasons["a7"].startswith("value:")


def test_misp_list_and_rest_response_forms(tmp_path: Path) -> None:
    event = orjson.loads((FEEDS / "misp_event.json").read_bytes())
    for document in ([event, event], {"response": [event]}):
        path = tmp_path / "events.json"
        path.write_bytes(orjson.dumps(document))
        assert guess_format(path) == "misp"
        good, _ = split_items(list(read_feed(path)))
        assert len(good) == 5 * (2 if isinstance(document, list) else 1)
