"""The trace schema has one definition (the Rust core's ``schema`` module):
the Python types, limits and the clients' field lists agree with it."""

from __future__ import annotations

import dataclasses
import json

import infinium
from infinium import _core, client, types, utils

ANCHOR_LIMITS = {
    "MAX_NAME_LENGTH": 500,
    "MAX_DESCRIPTION_LENGTH": 10_000,
    "MAX_STRING_LENGTH": 2_000,
    "MAX_PAYLOAD_SIZE": 1_048_576,
}


def test_limits_keep_the_anchor_values_and_come_from_the_core() -> None:
    for name, value in ANCHOR_LIMITS.items():
        assert getattr(_core, name) == value
        assert getattr(utils, name) == value
        assert getattr(infinium, name) == value
        assert type(getattr(utils, name)) is int


def test_task_fields_are_taskdata_fields_in_declaration_order() -> None:
    declared = tuple(f.name for f in dataclasses.fields(types.TaskData))
    assert declared == _core.TASK_FIELDS
    assert _core.TASK_FIELDS[:4] == ("name", "description", "current_datetime", "duration")
    assert set(_core.SECTIONS) | set(_core.TOP_LEVEL_FIELDS) == set(_core.TASK_FIELDS[4:])
    assert not set(_core.SECTIONS) & set(_core.TOP_LEVEL_FIELDS)


def test_section_types_follow_the_schema_order() -> None:
    assert tuple(types.SECTION_TYPES) == _core.SECTIONS
    assert types.SECTION_TYPES["time_tracking"] is types.TimeTracking
    assert types.SECTION_TYPES["general"] is types.General
    hints = {f.name: f.type for f in dataclasses.fields(types.TaskData)}
    for name, cls in types.SECTION_TYPES.items():
        assert hints[name] == f"Optional[{cls.__name__}]"


def test_send_task_accepts_exactly_the_optional_fields() -> None:
    assert client._TOP_LEVEL_FIELDS == _core.TOP_LEVEL_FIELDS
    assert client._SEND_TASK_KWARGS == frozenset(_core.TASK_FIELDS[4:])


def test_body_sections_in_schema_order() -> None:
    task = types.TaskData(
        "n",
        "d",
        "2026-01-01T00:00:00Z",
        1.0,
        **{name: {"k": i} for i, name in enumerate(reversed(_core.SECTIONS))},
    )
    body = infinium.dumps(task)
    assert tuple(json.loads(body)["sections"]) == _core.SECTIONS
