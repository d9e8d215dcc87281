"""The inline data path's guard: the installed faust-streaming's internals that the inline path
overrides or reads must be the ones it was written against (by their source, not the
version string); a changed one fails here, saying what to re-check, and makes a worker run
the agents path instead."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from engine.stream.fastpath import (
    INTERNALS,
    changed_internals,
    choose_data_path,
    fingerprint_source,
    installed_source,
)

DRAIN = "faust.transport.consumer:Consumer._drain_messages"


def assert_inline_internals_known(source_of: Callable[[str], str] = installed_source) -> None:
    changed = changed_internals(source_of)
    assert not changed, (
        "the installed faust-streaming changed internals the inline data path "
        "(engine/stream/app.py) overrides or reads. Re-check each against the inline path, "
        "then record the new fingerprints in engine/stream/fastpath.py INTERNALS:\n"
        + "\n".join(changed)
    )


def test_installed_faust_internals_are_those_the_inline_path_was_written_against() -> None:
    assert_inline_internals_known()


def with_changed(name: str, change: Callable[[str], str]) -> Callable[[str], str]:
    """The installed sources, but ``name``'s as ``change`` makes it."""

    def source_of(n: str) -> str:
        source = installed_source(n)
        return change(source) if n == name else source

    return source_of


def test_the_guard_fails_when_fed_a_changed_internal() -> None:
    # one statement more in Faust's drain loop, as an upgrade inside the pin could bring
    def add_statement(source: str) -> str:
        assert "set_flag(flag_consumer_fetching)" in source
        return source.replace(
            "set_flag(flag_consumer_fetching)",
            "set_flag(flag_consumer_fetching)\n                self._new_bookkeeping = True",
        )

    source_of = with_changed(DRAIN, add_statement)
    with pytest.raises(AssertionError) as failed:
        assert_inline_internals_known(source_of)
    message = str(failed.value)
    assert DRAIN in message
    assert "InlineConsumer._drain_messages is a copy of this loop" in message
    assert "engine/stream/fastpath.py" in message
    # only the changed internal is reported
    assert [line.split(":")[0:2] for line in changed_internals(source_of)] == [
        DRAIN.split(":")[0:2]
    ]


def test_a_changed_default_or_a_renamed_attribute_counts_too() -> None:
    source = installed_source("faust.transport.consumer:Consumer.__init__")
    assert "self._commit_every" in source
    renamed = source.replace("self._commit_every", "self._commit_every_n")
    assert fingerprint_source(renamed) != fingerprint_source(source)


def test_comments_blank_lines_and_docstrings_do_not_count() -> None:
    source = installed_source(DRAIN)
    reworded = source.replace("\n", "\n\n", 3).replace(
        "# This is the background thread", "# reworded: the background thread"
    )
    assert reworded != source
    assert fingerprint_source(reworded) == fingerprint_source(source)
    documented = source.replace(":  # pragma: no cover\n", ':\n        """Now documented."""\n', 1)
    assert documented != source
    assert fingerprint_source(documented) == fingerprint_source(source)


def test_a_changed_cython_source_counts() -> None:
    name = "faust.transport._cython/conductor.pyx"
    source_of = with_changed(name, lambda s: s.replace("put_nowait_enhanced", "put_nowait", 1))
    assert [c.split(":")[0] for c in changed_internals(source_of)] == [name]


def test_an_internal_that_is_gone_counts_as_changed() -> None:
    def source_of(name: str) -> str:
        if name == "faust.channels:Channel.queue":
            raise AttributeError("type object 'Channel' has no attribute 'queue'")
        return installed_source(name)

    (changed,) = changed_internals(source_of)
    assert changed.startswith("faust.channels:Channel.queue: source not readable")
    assert "InlineTopic.queue" in changed


def test_every_internal_says_what_to_recheck() -> None:
    assert len(INTERNALS) >= 10
    for name, internal in INTERNALS.items():
        assert len(internal.fingerprint) == 16, name
        assert internal.recheck, name


def test_a_worker_on_unknown_internals_runs_the_agents_path_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert choose_data_path("inline") == "inline"
    assert choose_data_path("agents") == "agents"
    source_of = with_changed(DRAIN, lambda s: s.replace("yield_every = 100", "yield_every = 10"))
    with caplog.at_level(logging.WARNING, logger="engine.stream.fastpath"):
        assert choose_data_path("inline", source_of) == "agents"
    (record,) = caplog.records
    assert "running the agents data path" in record.getMessage()
    assert DRAIN in record.getMessage()


def test_the_ordered_acks_and_the_stop_handling_are_guarded_too() -> None:
    # what the Dispatcher's ordered acks work around (faust-streaming#606) and the mode
    # Service attributes InlineConsumer._drain_messages reads (fetcher._stopped, _stopped)
    for name in (
        "faust.transport.consumer:Consumer._new_offset",
        "faust.transport.consumer:Consumer.on_partitions_revoked",
        "faust.transport.consumer:Fetcher",
        "mode.services:Service.__init__",
        "mode.services:Service.stop",
    ):
        assert name in INTERNALS, name
    new_offset = "faust.transport.consumer:Consumer._new_offset"
    source_of = with_changed(new_offset, lambda s: s + "\n    _floor = None\n")
    (changed,) = changed_internals(source_of)
    assert changed.startswith(f"{new_offset}: fingerprint")
    assert "faust-streaming#606" in changed
