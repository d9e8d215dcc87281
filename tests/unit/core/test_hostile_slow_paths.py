"""Values built to be slow to normalize or to match (engine.devtools.hostile) each finish
within a generous bound relative to a typical event measured in the same test, and the
costly steps stay under their fixed budgets of work. No absolute timings: the machine is
shared and noisy, so each figure is the fastest of a few runs."""

from __future__ import annotations

import pytest

import engine.core.matcher as matcher_module
from engine.core.matcher import MAX_PART_READS, MAX_RUN_READS, numbers_in_text
from engine.core.normalize import normalize_domain, normalize_phone, split_url
from engine.core.normalize.domain import MAX_HOST_TEXT_LENGTH
from engine.core.normalize.phone import MAX_PHONE_TEXT_LENGTH
from engine.devtools.hostile import (
    HOSTILE_BYTES,
    TYPICAL,
    HostileCase,
    best_seconds,
    hostile_cases,
    hostile_matcher,
    process_once,
)
from engine.devtools.reference import numbers_by_hand
from engine.errors import NormalizationError

# a hostile event may cost at most this many typical events of its stream
MAX_RATIO = 2000
MATCHER = hostile_matcher()


@pytest.mark.parametrize("case", hostile_cases(), ids=lambda c: c.name)
def test_a_hostile_value_costs_at_most_2000_typical_events(case: HostileCase) -> None:
    raw = case.raw()
    assert len(raw) >= HOSTILE_BYTES
    typical = TYPICAL[case.stream]
    # warm (caches, the first call's imports); every case is schema-valid, so it is matched
    process_once(MATCHER, case.stream, raw)
    base = best_seconds(lambda: process_once(MATCHER, case.stream, typical), 200)
    hostile = best_seconds(lambda: process_once(MATCHER, case.stream, raw), 3)
    assert hostile <= MAX_RATIO * base, (
        f"{case.name}: {hostile * 1e6:.0f} µs, {hostile / base:.0f}x a typical "
        f"{case.stream.value} event ({base * 1e6:.1f} µs)"
    )


def test_number_reads_per_url_stay_within_their_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = matcher_module.normalize_phone

    def counting(value: str, region: str = "US") -> str:
        reads.append(value)
        return real(value, region)

    monkeypatch.setattr(matcher_module, "normalize_phone", counting)
    for case in hostile_cases():
        if case.field in ("url", "referrer"):
            reads.clear()
            numbers_in_text(case.value, "US")
            assert len(reads) <= MAX_RUN_READS + MAX_PART_READS, (case.name, len(reads))
    # many distinct ?tel= numbers: the first MAX_RUN_READS are read, the rest not at all
    tels = "/?" + "&".join(f"tel=1800555{i:04d}" for i in range(MAX_RUN_READS + 50))
    reads.clear()
    found = numbers_in_text(tels, "US")
    assert len(reads) == MAX_RUN_READS
    assert len(found) == MAX_RUN_READS
    assert found == numbers_by_hand(tels, "US")  # the reference keeps the same budget
    # one number written a thousand times is read once, and found each time
    reads.clear()
    assert len(numbers_in_text("/?" + "&".join(["tel=18005550199"] * 1000), "US")) == 1000
    assert reads == ["18005550199"]
    # a run of one piece that is no number: no part search
    reads.clear()
    numbers_in_text("/" + "/".join(["1234567"] * 1000), "US")
    assert reads == ["1234567"]


def test_an_overlong_host_or_number_is_refused_before_any_scan() -> None:
    host = ".".join(["a"] * 100_000)
    with pytest.raises(NormalizationError, match=f"more than {MAX_HOST_TEXT_LENGTH}"):
        normalize_domain(host)
    with pytest.raises(NormalizationError, match=f"more than {MAX_HOST_TEXT_LENGTH}"):
        split_url(f"http://{host}/x")
    # a long host that is still a host name is read: the limit is on the written text only
    assert normalize_domain("%61." * 60 + "com") == "a." * 60 + "com"
    with pytest.raises(NormalizationError, match="too long"):
        normalize_phone("1" * 100_000, "US")
    with pytest.raises(NormalizationError, match="too long"):
        normalize_phone("+1 800 555 0199" + " " * MAX_PHONE_TEXT_LENGTH + "1", "US")
    # surrounding blanks do not count, as for phonenumbers.parse
    assert normalize_phone(" " * 300 + "+18005550199", "US") == "+18005550199"
