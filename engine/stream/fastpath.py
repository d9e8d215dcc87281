"""The guard of the inline data path: the Faust internals it overrides or relies on, as they
were when it was written (a fingerprint of each one's source), and a check against the
installed faust-streaming.

The inline path (:mod:`engine.stream.app`) replaces ``Consumer._drain_messages`` with a copy
of its own, replaces ``Topic._compile_decode`` and ``Topic.queue``, reads consumer,
fetcher (mode ``Service``) and message attributes that are no API, and tunes the fetches of
the aiokafka consumer Faust builds (``tune_fetch``: two attributes aiokafka keeps from its
constructor's arguments, which Faust does not pass); the ordered acks of both
paths rely on how the consumer computes the offset to commit and what a revoke drops. An
upgrade inside the pin can change any of them without a version bump that says so; then the
worker must not guess: it runs the ``agents`` path (Faust's public API) and says why.
``tests/unit/stream/test_fastpath.py`` fails on the same check, so a change is re-checked
before it ships.

The fingerprint is a hash of the source's syntax tree without docstrings: comments,
formatting and docstrings may change, code may not.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import logging
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Internal:
    """One Faust internal the inline path depends on."""

    fingerprint: str  # as recorded when the inline path was last checked against it
    recheck: str  # what to re-check in engine/stream/app.py when it changed


# faust-streaming 0.15.3, its mode-streaming and aiokafka 0.14.0 (the inline path was written
# against them; see pyproject's pins)
INTERNALS: Mapping[str, Internal] = {
    "faust.transport.consumer:Consumer._drain_messages": Internal(
        "534d036692b697d3",
        "InlineConsumer._drain_messages is a copy of this loop: port what changed "
        "(read offsets, gaps, commit_every, stop handling)",
    ),
    "faust.transport.consumer:Consumer.__init__": Internal(
        "ba9792c9b9766a20",
        "InlineConsumer reads _read_offset, _commit_every, _n_acked and callback, set here "
        "(_stopped is mode.Service's: see mode.services:Service.__init__)",
    ),
    "faust.transport.consumer:Consumer._new_offset": Internal(
        "80c982c4c7d84de5",
        "the commit offset is the first run of acked offsets from the committed one: the "
        "Dispatcher's ordered acks (engine/stream/app.py) rely on it not passing a gap "
        "that is still pending (faust-streaming#606)",
    ),
    "faust.transport.consumer:Consumer.on_partitions_revoked": Internal(
        "b8a7f59649e10ad4",
        "a revoke drops the partition's committed and read offsets (_committed_offset, "
        "_read_offset): the ordered acks (faust-streaming#606) are written against that",
    ),
    "faust.transport.consumer:Fetcher": Internal(
        "08fce765c25c5cb6",
        "the Fetcher's task calls consumer._drain_messages(self) and cancels it on stop; "
        "InlineConsumer._drain_messages reads fetcher._stopped",
    ),
    "mode.services:Service.__init__": Internal(
        "eb3defc2cecb05a0",
        "InlineConsumer._drain_messages reads self._stopped and fetcher._stopped "
        "(the Service's stopped event, set here) and self.should_stop",
    ),
    "mode.services:Service.stop": Internal(
        "dbc9773a59d451c7",
        "a stop sets _stopped, which ends InlineConsumer._drain_messages' loop",
    ),
    "faust.transport.consumer:Consumer.getmany": Internal(
        "1936842581381d27",
        "InlineConsumer._drain_messages iterates getmany(timeout=...) as (tp, message)",
    ),
    "faust.transport.consumer:Consumer._add_gap": Internal(
        "a56811a8a7033ef1",
        "InlineConsumer._drain_messages records offset gaps with _add_gap(tp, from, to)",
    ),
    "faust.transport.consumer:Consumer.ack": Internal(
        "c8d9d2a19869c5f5",
        "Dispatcher acks with Message.ack(consumer), which ends here: commit bookkeeping",
    ),
    "faust.transport.consumer:Consumer.unacked": Internal(
        "6a2fe26c3dafa0ea",
        "record_handler adds each record to consumer.unacked (pending until acked)",
    ),
    "faust.transport.consumer:Consumer.wait_empty": Internal(
        "649f70060a0f2ba4",
        "stop and rebalance wait on consumer.unacked, which record_handler fills",
    ),
    "faust.streams:Stream._py_aiter": Internal(
        "bb52cd58e0ca33ce",
        "record_handler does what a stream does before yielding an event (skip stale "
        "generation / stopped flow, track the message): port what changed",
    ),
    "faust.topics:Topic.__init__": Internal(
        "eb83197406edf612",
        "InlineTopic.__init__ relies on it calling _compile_decode and taking acks=",
    ),
    "faust.topics:Topic._compile_decode": Internal(
        "b1fd7d854aac7843",
        "InlineTopic._compile_decode replaces it: decode becomes the record handler",
    ),
    "faust.channels:Channel.queue": Internal(
        "254a6b666a2ac4c2",
        "InlineTopic.queue replaces it with a sink (the Conductor's put goes nowhere)",
    ),
    "faust.transport.conductor:ConductorCompiler.build": Internal(
        "15d11ee554376d31",
        "a record routed through the Conductor calls topic.decode and topic.queue "
        "(full, put_nowait_enhanced): InlineTopic must still fit that use",
    ),
    "faust.transport._cython/conductor.pyx": Internal(
        "5d021200f38871d4",
        "the compiled Conductor handler: same use of topic.decode and topic.queue",
    ),
    "faust._cython/streams.pyx": Internal(
        "d0daea0a3c9c016c",
        "the compiled stream iterator: record_handler does what it does before a yield",
    ),
    "faust.types.tuples:Message.__init__": Internal(
        "cdfa09de9bbd3ea1",
        "record_handler reads generation_id and tracked; InlineConsumer calls incref",
    ),
    "faust.types.tuples:Message.ack": Internal(
        "3b6daa7a6184a8c3",
        "Dispatcher acks with message.ack(consumer) once the outputs are delivered",
    ),
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": Internal(
        "935107c5390d82d5",
        "InlineConsumer._new_consumer_thread makes an InlineConsumerThread the same way",
    ),
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer": Internal(
        "f65f5b3633975b70",
        "InlineConsumerThread tunes the aiokafka consumer this builds (built, not started, "
        "with no fetch_min_bytes argument): see tune_fetch",
    ),
    "aiokafka.consumer.consumer:AIOKafkaConsumer.__init__": Internal(
        "c1f14f0296e50ddc",
        "tune_fetch sets _fetch_min_bytes and _fetch_max_wait_ms, which this keeps from its "
        "fetch_min_bytes= and fetch_max_wait_ms= arguments",
    ),
    "aiokafka.consumer.consumer:AIOKafkaConsumer.start": Internal(
        "27ef4ec8db169c4c",
        "tune_fetch relies on start() building the Fetcher from _fetch_min_bytes and "
        "_fetch_max_wait_ms",
    ),
    "faust.app.base:App._new_transport": Internal(
        "fa850ae0e84fc714", "WorkerApp._new_transport replaces it to consume with InlineConsumer"
    ),
}


def fingerprint_source(source: str, *, cython: bool = False) -> str:
    """A hash of ``source``'s syntax tree, docstrings left out (comments never reach it);
    of Cython source (no Python syntax), its lines without comments and blank lines."""
    if cython:
        lines = (line.split("#", 1)[0].rstrip() for line in source.splitlines())
        text = "\n".join(line for line in lines if line.strip())
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def installed_source(name: str) -> str:
    """The installed source of an internal named ``module:Attr.path``, or of a file shipped
    in a package (``package/file``)."""
    if ":" not in name:
        package, _, filename = name.partition("/")
        pkg_file = importlib.import_module(package).__file__
        if pkg_file is None:
            raise FileNotFoundError(name)
        return (Path(pkg_file).parent / filename).read_text(encoding="utf-8")
    module_name, _, path = name.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in path.split("."):
        obj = inspect.getattr_static(obj, part)
    if isinstance(obj, property):
        obj = obj.fget
    return inspect.getsource(obj)


def changed_internals(
    source_of: Callable[[str], str] = installed_source,
    internals: Mapping[str, Internal] = INTERNALS,
) -> list[str]:
    """One line per internal whose installed source differs from the recorded one (or cannot
    be read), saying what to re-check; empty when the inline path knows them all."""
    changed: list[str] = []
    for name, internal in internals.items():
        try:
            found = fingerprint_source(source_of(name), cython=name.endswith(".pyx"))
        except (OSError, TypeError, AttributeError, ImportError, SyntaxError) as exc:
            changed.append(f"{name}: source not readable ({exc!r}); re-check {internal.recheck}")
            continue
        if found != internal.fingerprint:
            changed.append(
                f"{name}: fingerprint {found}, recorded {internal.fingerprint}; "
                f"re-check {internal.recheck}"
            )
    return changed


def choose_data_path(wanted: str, source_of: Callable[[str], str] = installed_source) -> str:
    """The data path to run: ``wanted``, unless it is ``inline`` and the installed
    faust-streaming is not the one the inline path was written against (then ``agents``)."""
    if wanted != "inline":
        return wanted
    changed = changed_internals(source_of)
    if not changed:
        return "inline"
    import aiokafka
    import faust

    log.warning(
        "faust-streaming %s (aiokafka %s) differs from the one the inline data path was "
        "written against (%d internals changed: %s); running the agents data path (Faust's "
        "public API) "
        "instead. Re-check engine/stream/app.py and update engine/stream/fastpath.py to "
        "use the inline path again",
        faust.__version__,
        aiokafka.__version__,
        len(changed),
        "; ".join(changed),
    )
    return "agents"
