"""Values built to be slow to normalize or to match (engine.devtools.hostile) each stay
within a budget of work relative to a typical event, and the costly steps stay under their
fixed budgets. Work is counted in function calls, never timed: tests do not assert on
timings (the machine is shared and noisy); benchmarks/bench_hostile.py reports the times."""

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
    calls_made,
    hostile_cases,
    hostile_matcher,
    process_once,
)
from engine.devtools.reference import numbers_by_hand
from engine.errors import NormalizationError

# a field read as one value (host, caller, callee) may cost a few typical events, however
# long it is written; a URL or referrer may also read its numbers, each read costing at most
# CALLS_PER_READ calls, at most MAX_RUN_READS + MAX_PART_READS reads
FIELD_FACTOR = 4
CALLS_PER_READ = 64
MATCHER = hostile_matcher()


@pytest.mark.parametrize("case", hostile_cases(), ids=lambda c: c.name)
def test_a_hostile_value_costs_bounded_work(case: HostileCase) -> None:
    raw = case.raw()
    assert len(raw) >= HOSTILE_BYTES
    typical = TYPICAL[case.stream]
    # warm both (caches, the first call's imports), then count a run of each: every case is
    # schema-valid, so it is matched
    process_once(MATCHER, case.stream, typical)
    process_once(MATCHER, case.stream, raw)
    base = calls_made(lambda: process_once(MATCHER, case.stream, typical))
    hostile = calls_made(lambda: process_once(MATCHER, case.stream, raw))
    budget = FIELD_FACTOR * base
    if case.field in ("url", "referrer"):
        budget += (MAX_RUN_READS + MAX_PART_READS) * CALLS_PER_READ
    assert hostile <= budget, (
        f"{case.name}: {hostile} calls, over its budget of {budget} "
        f"({base} for a typical {case.stream.value} event)"
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
