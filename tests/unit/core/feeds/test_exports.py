"""CSV exports of public lists (URLhaus, PhishTank, FTC Do-Not-Call), as published."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.feeds import confidence_from_reports, read_feed
from engine.core.models import IndicatorType
from engine.errors import FeedError
from tests.unit.core.feeds.feed_support import read_fixture, split_items

T = IndicatorType


def test_urlhaus_dump_with_its_banner_and_commented_header() -> None:
    good, bad = read_fixture("urlhaus_csv.txt")
    assert [(i.type, i.value) for i in good] == [
        (T.URL, "198.51.100.7:47612/i"),
        (T.URL, "fake-invoice.example/docs/Invoice_2026.zip"),
        (T.URL, "tech-support-popup.example/alert.html?call=1-888-555-0142"),
        (T.URL, "fake-invoice.example/docs/Invoice_2026.zip"),  # the dump's duplicate row
    ]
    first = good[0]
    # threat and the comma-separated tags cell, one tag each
    assert first.tags == ("32-bit", "Mozi", "elf", "malware_download", "mips")
    assert first.reference == "https://urlhaus.abuse.ch/url/3300001/"
    assert first.description == "URLhaus 3300001 (online)"
    assert good[1].description == "URLhaus 3300002 (offline)"
    assert first.sources == ("urlhaus_csv.txt",)
    assert [(e.line, e.reason) for e in bad] == [(14, "value: invalid url 'http://': no host")]


def test_urlhaus_rows_without_any_header_use_the_documented_columns(tmp_path: Path) -> None:
    path = tmp_path / "urlhaus.csv"
    path.write_text(
        '# abuse.ch URLhaus Database Dump\n"1","2026-01-01 00:00:00","http://a.example/x",'
        '"online","","malware_download","","https://urlhaus.abuse.ch/url/1/","r"\n'
    )
    good, bad = split_items(list(read_feed(path)))
    assert not bad and [i.value for i in good] == ["a.example/x"]


def test_phishtank_export_quoted_cells_and_bom() -> None:
    good, bad = read_fixture("phishtank_online_valid.csv")
    assert [i.value for i in good] == [
        "paypal.account-limited.example/webapps/signin",
        "login-microsoftonline.example/common/login?x=1,2",  # a comma inside quotes
        "bank-alerts.example/secure",
        "paypal.account-limited.example/webapps/signin",
    ]
    assert all(i.type is T.URL and i.confidence == 90 for i in good)  # verified
    assert good[0].tags == ("PayPal", "phishing")
    assert good[2].tags == ("phishing",)  # target "Other" says nothing
    assert good[0].reference == "http://www.phishtank.com/phish_detail.php?phish_id=8800001"
    assert good[0].description == "PhishTank phish 8800001"
    assert [(e.line, e.reason) for e in bad] == [(6, "value: missing or empty")]


def test_ftc_complaints_one_indicator_per_number_confidence_from_reports() -> None:
    good, bad = read_fixture("ftc_dnc_complaints.csv", region="GB")  # FTC numbers are US
    by_value = {i.value: i for i in good}
    assert list(by_value) == ["+18885550142", "+18005550199", "+18775550123"]
    assert len(good) == 3  # four reports of one number in four spellings: one indicator
    often = by_value["+18885550142"]
    assert often.confidence == confidence_from_reports(4) == 70
    assert often.tags == (
        "Calls pretending to be government, businesses, or family and friends",
        "Computer & technical support",
        "ftc-dnc",
    )  # "No Subject Provided" is no tag
    assert often.description == "4 FTC Do-Not-Call complaints"
    assert by_value["+18005550199"].confidence == 55
    assert by_value["+18775550123"].confidence == 40
    assert by_value["+18775550123"].description == "1 FTC Do-Not-Call complaint"
    assert all(i.type is T.PHONE for i in good)
    assert [(e.line, e.reason.split(":")[0]) for e in bad] == [
        (9, "Company_Phone_Number"),
        (10, "Company_Phone_Number"),
    ]
    assert "too short" in bad[0].reason and bad[1].reason.endswith("empty")


@pytest.mark.parametrize(
    ("reports", "confidence"), [(1, 40), (2, 55), (3, 64), (4, 70), (8, 85), (12, 94), (500, 95)]
)
def test_confidence_grows_with_reports(reports: int, confidence: int) -> None:
    assert confidence_from_reports(reports) == confidence


def test_an_export_without_its_key_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("phish_id,link\n1,http://a.example/\n")
    with pytest.raises(FeedError, match="PhishTank export without a 'url' column"):
        list(read_feed(path, format="phishtank"))
    with pytest.raises(FeedError, match="FTC Do-Not-Call export without a 'company_phone_number'"):
        list(read_feed(path, format="ftc-dnc"))
