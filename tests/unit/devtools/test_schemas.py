"""schemas/*.json: the examples validate or fail as their folder says, and the msgspec decoders
of engine.core.events accept exactly the call.v1/web.v1 documents the schemas accept."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from engine.core.events import decode_call, decode_web
from engine.devtools.schemas import (
    SCHEMA_NAMES,
    SchemaViolation,
    UnknownSchema,
    is_valid,
    load_schema,
    schemas_dir,
    validate,
)
from engine.errors import DecodeError, ScamwatchError

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = REPO / "schemas"
EXAMPLES = SCHEMAS / "examples"
EXPECTED_ERRORS: dict[str, str] = json.loads((EXAMPLES / "expected-errors.json").read_text())
ALL_EXAMPLES = sorted(EXAMPLES.glob("*/*/*.json"))
DECODERS: dict[str, Callable[[bytes], object]] = {"call.v1": decode_call, "web.v1": decode_web}

# the fields of DESIGN.md, exactly
DESIGN_FIELDS = {
    "call.v1": {
        "event_id", "ts", "partner_id", "caller", "callee",
        "region", "subscriber_id", "direction", "duration_s", "attestation",
    },
    "web.v1": {"event_id", "ts", "partner_id", "url", "host", "referrer", "kind", "subscriber_id"},
    "alert.v1": {
        "alert_id", "ts", "event_ts", "stream", "rule", "severity", "partner_id",
        "subscriber_id", "event_id", "matches", "event", "source", "engine",
        "suppressed", "journey", "discovery", "retro", "hunt",
    },
    "deadletter.v1": {"reason", "error", "stream", "source", "raw", "raw_encoding", "ts"},
    "indicator.v1": {
        "type", "value", "source", "severity", "confidence", "tags",
        "valid_from", "valid_until", "description", "reference",
    },
    "sighting.v1": {
        "number", "kind", "partner_id", "subscriber_id", "event_id", "ts", "exposure",
    },
}  # fmt: skip
REQUIRED = {
    "call.v1": {"event_id", "ts", "partner_id", "caller", "callee"},
    "web.v1": {"event_id", "ts", "partner_id"},
    "indicator.v1": {"type", "value"},
    "sighting.v1": {
        "number", "kind", "partner_id", "subscriber_id", "event_id", "ts", "exposure",
    },
}  # fmt: skip


def _rel(path: Path) -> str:
    return path.relative_to(EXAMPLES).as_posix()


def _described(schema: dict[str, Any], prop: dict[str, Any]) -> bool:
    if "description" in prop:
        return True
    ref = prop.get("$ref", "")
    target = schema["$defs"].get(ref.removeprefix("#/$defs/"), {}) if ref else {}
    return "description" in target


# --- the schema files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_draft_2020_12_with_id_title_and_described_fields(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:scamwatch:schema:{name}"
    assert schema["title"] == name
    assert set(schema["properties"]) == DESIGN_FIELDS[name]
    undescribed = [f for f, p in schema["properties"].items() if not _described(schema, p)]
    assert not undescribed, f"{name}: fields without a description: {undescribed}"
    if name in REQUIRED:
        assert set(schema["required"]) == REQUIRED[name]


def test_timestamp_definition_is_the_same_in_every_schema() -> None:
    definitions = {json.dumps(load_schema(n)["$defs"]["timestamp"]) for n in SCHEMA_NAMES}
    assert len(definitions) == 1


def test_load_schema_returns_a_copy_and_unknown_names_fail() -> None:
    first = load_schema("call.v1")
    first["required"].clear()
    assert "caller" in load_schema("call.v1")["required"]
    with pytest.raises(UnknownSchema, match=r"sms\.v1"):
        load_schema("sms.v1")
    with pytest.raises(ScamwatchError):
        validate("sms.v1", {})


def test_packaged_copy_is_identical_to_the_canonical_schemas() -> None:
    packaged = REPO / "engine" / "devtools" / "data" / "schemas"
    names = sorted(p.name for p in SCHEMAS.glob("*.json"))
    assert names == sorted(f"{n}.json" for n in SCHEMA_NAMES)
    assert sorted(p.name for p in packaged.glob("*.json")) == names
    for name in names:
        assert (packaged / name).read_bytes() == (SCHEMAS / name).read_bytes(), (
            f"engine/devtools/data/schemas/{name} differs from schemas/{name}: "
            "copy schemas/*.json there"
        )


def test_schemas_dir_is_the_checkout_else_the_packaged_copy(tmp_path: Path) -> None:
    assert schemas_dir() == SCHEMAS
    installed = tmp_path / "site-packages" / "engine" / "devtools"
    shutil.copytree(
        REPO / "engine" / "devtools" / "data" / "schemas", installed / "data" / "schemas"
    )
    assert schemas_dir(installed) == installed / "data" / "schemas"
    assert (schemas_dir(installed) / "alert.v1.json").is_file()


# --- the examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_each_schema_has_several_valid_and_invalid_examples(name: str) -> None:
    assert len(list((EXAMPLES / name / "valid").glob("*.json"))) >= 4
    assert len(list((EXAMPLES / name / "invalid").glob("*.json"))) >= 5


def test_expected_errors_lists_exactly_the_invalid_examples() -> None:
    invalid = {_rel(p) for p in ALL_EXAMPLES if p.parent.name == "invalid"}
    assert set(EXPECTED_ERRORS) == invalid
    assert {p.parent.name for p in ALL_EXAMPLES} == {"valid", "invalid"}
    assert {p.parent.parent.name for p in ALL_EXAMPLES} == set(SCHEMA_NAMES)


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=_rel)
def test_example_validates_or_fails_as_its_folder_says(path: Path) -> None:
    name, kind = path.parent.parent.name, path.parent.name
    doc = json.loads(path.read_text(encoding="utf-8"))
    if kind == "valid":
        validate(name, doc)
        assert is_valid(name, doc)
        return
    with pytest.raises(SchemaViolation) as caught:
        validate(name, doc)
    assert caught.value.path == EXPECTED_ERRORS[_rel(path)], str(caught.value)
    assert str(caught.value).startswith(f"{name}: {caught.value.path}: ")
    assert not is_valid(name, doc)


@pytest.mark.parametrize(
    "path",
    [p for p in ALL_EXAMPLES if p.parent.parent.name in DECODERS],
    ids=_rel,
)
def test_event_decoder_agrees_with_the_schema_on_the_examples(path: Path) -> None:
    decode = DECODERS[path.parent.parent.name]
    raw = path.read_bytes()
    if path.parent.name == "valid":
        decode(raw)
        return
    with pytest.raises(DecodeError) as caught:
        decode(raw)
    assert caught.value.reason == "schema_violation"
    # both name the same field
    assert caught.value.error.startswith(f"{EXPECTED_ERRORS[_rel(path)]}: "), caught.value.error


def test_deadletter_base64_examples_carry_real_base64() -> None:
    seen = 0
    for path in sorted((EXAMPLES / "deadletter.v1" / "valid").glob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("raw_encoding") == "base64":
            assert base64.b64decode(doc["raw"], validate=True)
            seen += 1
    utf8 = json.loads((EXAMPLES / "deadletter.v1/valid/invalid-utf8-base64-raw.json").read_text())
    with pytest.raises(UnicodeDecodeError):
        base64.b64decode(utf8["raw"]).decode("utf-8")
    assert seen >= 2


def test_integers_are_written_without_fraction_and_numbers_are_finite() -> None:
    call = json.loads((EXAMPLES / "call.v1/valid/e164-epoch-ms.json").read_text())
    with pytest.raises(SchemaViolation, match=r"^call\.v1: ts: "):
        validate("call.v1", {**call, "ts": float(call["ts"])})
    with pytest.raises(SchemaViolation, match=r"^call\.v1: duration_s: "):
        validate("call.v1", {**call, "duration_s": float("inf")})
    with pytest.raises(SchemaViolation, match=r"^call\.v1: ts: "):
        validate("call.v1", {**call, "ts": True})
    validate("call.v1", {**call, "duration_s": 12})


def test_a_record_level_error_does_not_repeat_the_whole_record() -> None:
    with pytest.raises(SchemaViolation) as caught:
        validate("web.v1", ["x" * 10_000])
    assert caught.value.path == "record"
    assert len(str(caught.value)) < 300


# --- generated documents: schema and decoder agree -------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_offsets = st.integers(min_value=-1439, max_value=1439).map(
    lambda m: timezone(timedelta(minutes=m))
)
_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.one_of(st.none(), _offsets),
)


def _rfc3339(moment: datetime) -> st.SearchStrategy[str]:
    iso = moment.isoformat()
    return st.sampled_from(
        [iso, moment.isoformat(" "), iso.replace("+00:00", "Z"), moment.isoformat("t")]
    )


def _almost_rfc3339(moment: datetime) -> st.SearchStrategy[str]:
    iso = moment.isoformat()
    return st.sampled_from(
        [
            iso.replace("+00:00", "z"),
            moment.isoformat(timespec="minutes"),
            moment.isoformat(timespec="milliseconds").replace(".", ","),
            moment.date().isoformat(),
            moment.strftime("%Y%m%dT%H%M%S"),
            "{}-W{:02d}-{}".format(*moment.isocalendar()),
            iso + "\n",
            " " + iso,
        ]
    )


_ts_values = st.one_of(
    st.integers(min_value=946_684_800_000, max_value=4_102_444_800_000),
    st.sampled_from([946_684_800_000 - 1, 4_102_444_800_000 + 1, 1_767_225_600]),
    _datetimes.flatmap(_rfc3339),
    _datetimes.flatmap(_almost_rfc3339),
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
        r"(Z|z|[+-][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?",
        fullmatch=True,
    ),
)
_strings = st.text(max_size=12) | st.sampled_from(["", "anonymous", "+1 (800) 555-0199"])
_ids = st.text(min_size=1, max_size=12)
_nullable_strings = _strings | st.none()
_floats = st.floats(allow_nan=False, allow_infinity=False)
_ints = st.integers(min_value=-(10**20), max_value=10**20)

# per field: values a partner might plausibly send, right or nearly right
_CALL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": _ids,
    "ts": _ts_values,
    "partner_id": _ids,
    "caller": _strings,
    "callee": _strings,
    "region": st.sampled_from(["US", "us", "GB", "fr", None])
    | st.sampled_from(["USA", "U", "", "éé", "1A", "us\n"])
    | st.text(max_size=3),
    "subscriber_id": _nullable_strings,
    "direction": st.sampled_from(["inbound", "outbound", "Inbound", "in", None]),
    "duration_s": _floats | _ints | st.sampled_from([None, "12"]),
    "attestation": st.sampled_from(["A", "B", "C", "D", "a", None]),
}
_WEB_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": _ids,
    "ts": _ts_values,
    "partner_id": _ids,
    "url": st.sampled_from(["", "http://evil.example/call-1-800-555-0199", None])
    | st.text(max_size=8),
    "host": st.sampled_from(["", "evil.example", "Evil.Example.", None]) | st.text(max_size=8),
    "referrer": _nullable_strings,
    "kind": st.sampled_from(["http", "dns", "tls", "ftp", "HTTP", None]),
    "subscriber_id": _nullable_strings,
}
# each field is usually plausible, sometimes absent, sometimes any JSON value at all
_MODES = st.sampled_from(["plausible"] * 10 + ["absent", "any"])


def _documents(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    def build(modes: dict[str, str]) -> st.SearchStrategy[dict[str, Any]]:
        chosen = {
            name: fields[name] if mode == "plausible" else _json_values
            for name, mode in modes.items()
            if mode != "absent"
        }
        return st.fixed_dictionaries(chosen)

    known = st.fixed_dictionaries({name: _MODES for name in fields}).flatmap(build)
    extras = st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k not in fields), _json_values, max_size=2
    )
    return st.builds(lambda k, e: {**e, **k}, known, extras)


def _impossible_time(ts: object) -> bool:
    """A ts the schema pattern cannot rule out but that is no real time (2026-02-30T...)."""
    if not isinstance(ts, str):
        return False
    try:
        datetime.fromisoformat(ts)
    except ValueError:
        return True
    return False


def _assert_agree(name: str, doc: object) -> None:
    raw = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    schema_ok = is_valid(name, json.loads(raw))
    try:
        DECODERS[name](raw)
    except DecodeError as exc:
        assert exc.reason == "schema_violation", exc
        if schema_ok and isinstance(doc, dict) and _impossible_time(doc.get("ts")):
            # the one thing a JSON Schema pattern cannot say: which days a month has
            assert exc.error.startswith("ts: "), exc.error
            return
        assert not schema_ok, f"decoder rejects ({exc.error}) what {name} accepts: {raw!r}"
        return
    assert schema_ok, f"decoder accepts what {name} rejects: {raw!r}"


_SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_documents(_CALL_FIELDS))
def test_call_decoder_accepts_exactly_what_the_schema_accepts(doc: dict[str, Any]) -> None:
    _assert_agree("call.v1", doc)


@_SETTINGS
@given(_documents(_WEB_FIELDS))
def test_web_decoder_accepts_exactly_what_the_schema_accepts(doc: dict[str, Any]) -> None:
    _assert_agree("web.v1", doc)


@settings(max_examples=60, deadline=None)
@given(
    _json_values.filter(lambda v: not isinstance(v, dict)), st.sampled_from(["call.v1", "web.v1"])
)
def test_a_record_that_is_not_an_object_is_rejected_by_both(value: object, name: str) -> None:
    assert not is_valid(name, value)
    with pytest.raises(DecodeError) as caught:
        DECODERS[name](json.dumps(value).encode())
    assert caught.value.reason == "schema_violation"


# --- records the core builds are valid ---------------------------------------------------------


def test_alerts_and_deadletters_built_by_the_core_are_valid() -> None:
    from engine.core.alerts import build_alerts
    from engine.core.deadletter import build_deadletter
    from engine.core.events import event_ts_ms
    from engine.core.models import (
        Indicator,
        IndicatorType,
        Match,
        Rule,
        SourcePosition,
        Stream,
        Verdict,
    )

    number = Indicator(IndicatorType.PHONE, "+18005550199", sources=("a", "b"), valid_until=2**41)
    domain = Indicator(IndicatorType.DOMAIN, "evil.example", sources=("c",))
    verdict = Verdict(
        matches=(
            Match(Rule.URL_SCAM_NUMBER, "url", "1-800-555-0199", "+18005550199", number),
            Match(Rule.URL_SCAM_NUMBER, "url", "18005550199", "+18005550199", number),
            Match(Rule.HOST_SCAM_DOMAIN, "host", "a.Evil.example", "a.evil.example", domain),
        )
    )
    event = json.loads((EXAMPLES / "web.v1/valid/url-and-referrer.json").read_text())
    alerts = build_alerts(
        Stream.WEB,
        event,
        verdict,
        event_ts_ms=event_ts_ms(event["ts"]),
        source=SourcePosition("web", 2, 77),
        indicator_version=9,
        emitted_ms=1_767_225_600_123,
    )
    assert len(alerts) == 2
    for alert in alerts:
        validate("alert.v1", alert.to_dict())
        validate("alert.v1", orjson.loads(alert.to_json()))
    for raw in (b'{"event_id": ', b"\xff\xfe not utf-8", b""):
        record = build_deadletter(
            Stream.CALLS,
            raw,
            reason="invalid_json",
            error="record: JSON is malformed",
            source=SourcePosition("calls", 0, 3),
            emitted_ms=1_767_225_600_123,
        )
        validate("deadletter.v1", record.to_dict())
        validate("deadletter.v1", orjson.loads(record.to_json()))
