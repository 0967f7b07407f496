"""Profile fields over HTTP: coercion and refusal per type (quarantined, the rest applies),
every attribute operation, set times and set-once across a merge, the limits, and discovered
fields with their promotion."""

from __future__ import annotations

from typing import Any

import pytest

from profiles.models import DiscoveredField, Profile, ProfileField, QuarantinedAttribute
from profiles.services import STANDARD_FIELDS, discovered_field_promote
from tests.conftest import ApiApp
from tests.messages import Send, at, identify, profile_of
from tests.profiles.profile_api import IDENTIFY, configure, error, ok, patch

pytestmark = pytest.mark.django_db


def _profile(api_app: ApiApp, user_id: str) -> Profile:
    return Profile.objects.get(app=api_app.app, user_id=user_id)


def test_new_apps_get_the_standard_fields(api_app: ApiApp) -> None:
    fields = list(ProfileField.objects.filter(app=api_app.app).order_by("display_order"))
    assert [f.key for f in fields] == [
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "birthday",
        "gender",
        "city",
        "country",
        "language",
        "timezone",
        "created_at",
    ]
    assert [f.key for f in fields] == [key for key, *_ in STANDARD_FIELDS]
    by_key = {f.key: f for f in fields}
    assert by_key["email"].pii and by_key["phone"].pii and not by_key["city"].pii
    assert by_key["birthday"].field_type == "date"
    assert by_key["created_at"].field_type == "datetime" and by_key["created_at"].set_once


# -- coercion and refusal, per type ----------------------------------------------------------

COERCED = [
    ("number", "42", 42),
    ("number", " 4.5 ", 4.5),
    ("number", 7, 7),
    ("number", -0.25, -0.25),
    ("number", "1e3", 1000.0),
    ("boolean", "true", True),
    ("boolean", "FALSE", False),
    ("boolean", 1, True),
    ("boolean", False, False),
    ("string", 5551234, "5551234"),
    ("string", "plain", "plain"),
    ("datetime", "2024-05-17T11:30:00+02:00", "2024-05-17T09:30:00Z"),
    ("datetime", "2024-05-17T09:30:00.250Z", "2024-05-17T09:30:00.250000Z"),
    ("datetime", "2024-05-17", "2024-05-17T00:00:00Z"),
    ("datetime", "2024-05-17T09:30:00", "2024-05-17T09:30:00Z"),
    ("date", "1990-05-17", "1990-05-17"),
    ("date", "1990-05-17T00:00:00.000Z", "1990-05-17"),
    ("string_list", "solo", ["solo"]),
    ("string_list", ["a", 2], ["a", "2"]),
    ("object", {"plan": {"tier": 2}}, {"plan": {"tier": 2}}),
    ("number", None, None),
]

REFUSED = [
    ("number", "abc"),
    ("number", True),
    ("number", "042"),
    ("number", [1]),
    ("number", "1e400"),
    ("boolean", "yes"),
    ("boolean", 2),
    ("string", True),
    ("string", {"a": 1}),
    ("datetime", "yesterday"),
    ("datetime", 1700000000),
    ("datetime", "2024-02-30T00:00:00Z"),
    ("date", "1990-05-17T10:00:00Z"),
    ("date", "17/05/1990"),
    ("date", "1990-02-30"),
    ("string_list", [{"x": 1}]),
    ("string_list", True),
    ("object", "x"),
    ("object", [1]),
]


@pytest.mark.parametrize(("field_type", "sent", "stored"), COERCED)
def test_a_value_is_coerced_when_nothing_is_lost(
    api_app: ApiApp, field_type: str, sent: Any, stored: Any
) -> None:
    configure(api_app, "f", field_type)
    body = ok(patch(api_app, "u-1", {"attributes": {"f": sent}}))
    assert body["attribute_errors"] == []
    assert body["attributes"] == {"f": stored}
    assert _profile(api_app, "u-1").attributes == {"f": stored}
    assert not QuarantinedAttribute.objects.exists()


@pytest.mark.parametrize(("field_type", "sent"), REFUSED)
def test_a_value_that_would_lose_something_is_refused_alone_and_quarantined(
    api_app: ApiApp, field_type: str, sent: Any
) -> None:
    configure(api_app, "f", field_type)
    body = ok(patch(api_app, "u-1", {"attributes": {"f": sent, "other": "kept"}}))
    assert [(e["key"], e["code"]) for e in body["attribute_errors"]] == [("f", "invalid_value")]
    assert body["attribute_errors"][0]["message"]
    # The rest of the update applied; the refused value is kept, not dropped.
    assert _profile(api_app, "u-1").attributes == {"other": "kept"}
    row = QuarantinedAttribute.objects.get(app=api_app.app)
    assert (row.key, row.code, row.source, row.profile) == (
        "f",
        "invalid_value",
        "profile_api",
        _profile(api_app, "u-1"),
    )
    expected = sent if sent != "1e400" else "1e400"
    assert row.value == expected


def test_a_refused_value_leaves_the_stored_one(api_app: ApiApp) -> None:
    configure(api_app, "age", "number")
    ok(patch(api_app, "u-1", {"attributes": {"age": 30}}))
    ok(patch(api_app, "u-1", {"attributes": {"age": "thirty"}}))
    assert _profile(api_app, "u-1").attributes == {"age": 30}


def test_native_identify_reports_refused_attributes(api_app: ApiApp) -> None:
    response = api_app.post(
        IDENTIFY,
        {
            "device_id": "d1",
            "user_id": "u-1",
            "attributes": {"birthday": "last spring", "email": "ada@example.com"},
        },
    )
    body = ok(response)
    assert body["attribute_errors"] == [
        {
            "key": "birthday",
            "code": "invalid_value",
            "message": body["attribute_errors"][0]["message"],
        }
    ]
    assert _profile(api_app, "u-1").attributes == {"email": "ada@example.com"}
    row = QuarantinedAttribute.objects.get()
    assert (row.key, row.value, row.source) == ("birthday", "last spring", "ingestion")


def test_native_identify_without_refusals_keeps_its_answer(api_app: ApiApp) -> None:
    body = ok(api_app.post(IDENTIFY, {"device_id": "d1", "user_id": "u-1", "attributes": {"a": 1}}))
    assert set(body) == {"profile_id", "user_id", "kind"}


def test_segment_identify_answers_200_and_quarantines(api_app: ApiApp, send: Send) -> None:
    result = send(
        identify(
            "d1",
            "u-1",
            0,
            {"createdAt": "not a date", "firstName": "Ada", "address": {"city": "Oslo"}},
        )
    )
    assert result["accepted"] == 1 and result["rejected"] == 0
    assert _profile(api_app, "u-1").attributes == {
        "first_name": "Ada",
        "city": "Oslo",
        "address": {"city": "Oslo"},
    }
    row = QuarantinedAttribute.objects.get()
    assert (row.key, row.value, row.code) == ("created_at", "not a date", "invalid_value")


# -- operations ------------------------------------------------------------------------------


def test_each_operation(api_app: ApiApp) -> None:
    configure(api_app, "tags", "string_list")
    configure(api_app, "logins", "number")
    ok(
        patch(
            api_app,
            "u-1",
            {"attributes": {"plan": "free", "tmp": 1, "tags": ["a"], "logins": 1}},
        )
    )
    body = ok(
        patch(
            api_app,
            "u-1",
            {
                "operations": [
                    {"op": "set", "key": "plan", "value": "pro"},
                    {"op": "set_once", "key": "source", "value": "ads"},
                    {"op": "set_once", "key": "plan", "value": "ignored"},
                    {"op": "unset", "key": "tmp"},
                    {"op": "unset", "key": "never-set"},
                    {"op": "increment", "key": "logins", "value": 2},
                    {"op": "increment", "key": "score", "value": 1.5},
                    {"op": "append", "key": "tags", "value": ["b", "a"]},
                    {"op": "append", "key": "tags", "value": 3},
                    {"op": "remove", "key": "tags", "value": "a"},
                    {"op": "append", "key": "custom_list", "value": {"x": 1}},
                    {"op": "remove", "key": "nothing", "value": "x"},
                ]
            },
        )
    )
    assert body["attribute_errors"] == []
    profile = _profile(api_app, "u-1")
    assert profile.attributes == {
        "plan": "pro",
        "source": "ads",
        "logins": 3,
        "score": 1.5,
        "tags": ["b", "3"],  # a string list: 3 became "3"
        "custom_list": [{"x": 1}],
    }
    assert set(profile.attribute_times) == set(profile.attributes)


def test_operations_that_do_not_fit_the_field_are_refused(api_app: ApiApp) -> None:
    configure(api_app, "tags", "string_list")
    body = ok(
        patch(
            api_app,
            "u-1",
            {
                "attributes": {"plan": "pro"},
                "operations": [
                    {"op": "increment", "key": "email", "value": 1},
                    {"op": "append", "key": "city", "value": "Oslo"},
                    {"op": "append", "key": "tags", "value": [{"nested": True}]},
                ],
            },
        )
    )
    assert [(e["key"], e["code"]) for e in body["attribute_errors"]] == [
        ("email", "invalid_operation"),
        ("city", "invalid_operation"),
        ("tags", "invalid_value"),
    ]
    assert _profile(api_app, "u-1").attributes == {"plan": "pro"}
    assert QuarantinedAttribute.objects.count() == 3


def test_increment_past_the_number_range_is_refused(api_app: ApiApp) -> None:
    ok(patch(api_app, "u-1", {"attributes": {"n": 1.5e308}}))
    body = ok(
        patch(api_app, "u-1", {"operations": [{"op": "increment", "key": "n", "value": 1.5e308}]})
    )
    assert body["attribute_errors"][0]["code"] == "invalid_value"
    # PostgreSQL hands the big number back as an integer: compare as a float.
    assert float(_profile(api_app, "u-1").attributes["n"]) == 1.5e308


def test_segment_traits_take_posthog_and_mixpanel_operations(api_app: ApiApp, send: Send) -> None:
    send(identify("d1", "u-1", 0, {"plan": "free", "visits": 1, "tmp": True, "tags": ["a"]}))
    send(
        identify(
            "d1",
            "u-1",
            1,
            {
                "$set": {"plan": "pro", "firstName": "Ada"},
                "$set_once": {"source": "ads", "plan": "ignored"},
                "$unset": ["tmp"],
                "$add": {"visits": 2},
                "$append": {"tags": "b"},
                "$remove": {"tags": "a"},
            },
        )
    )
    assert _profile(api_app, "u-1").attributes == {
        "plan": "pro",
        "first_name": "Ada",
        "source": "ads",
        "visits": 3,
        "tags": ["b"],
    }


# -- set times -------------------------------------------------------------------------------


def test_each_key_remembers_when_it_was_set_and_a_late_value_loses(
    api_app: ApiApp, send: Send
) -> None:
    send(identify("d1", "u-1", 10, {"plan": "pro", "city": "Oslo"}))
    profile = _profile(api_app, "u-1")
    assert profile.attribute_times == {"plan": at(10), "city": at(10)}
    # An offline-queued identify from before arrives late: its older values do not win.
    send({**identify("d1", "u-1", 5, {"plan": "free", "color": "red"}), "messageId": "late"})
    profile.refresh_from_db()
    assert profile.attributes == {"plan": "pro", "city": "Oslo", "color": "red"}
    assert profile.attribute_times["plan"] == at(10)
    assert profile.attribute_times["color"] == at(5)


def test_set_once_keeps_the_earliest_value_across_a_merge(api_app: ApiApp, send: Send) -> None:
    # A guest on the tablet says when the account was created (earliest), and sets a plan.
    send(
        {
            "type": "identify",
            "anonymousId": "tablet",
            "timestamp": at(1),
            "messageId": "guest-traits",
            "traits": {"createdAt": "2019-01-01T00:00:00Z", "plan": "free"},
        }
    )
    guest = profile_of("tablet")
    # Alice, on her phone, later: another creation date and plan.
    send(identify("phone", "alice", 5, {"createdAt": "2020-06-01T00:00:00Z", "plan": "pro"}))
    # Alice logs in on the tablet: the guest is merged into her.
    send(identify("tablet", "alice", 10))
    alice = _profile(api_app, "alice")
    assert Profile.objects.get(pk=guest.pk).merged_into_id == alice.pk
    assert alice.attributes["created_at"] == "2019-01-01T00:00:00Z"  # set-once: the earliest
    assert alice.attributes["plan"] == "pro"  # otherwise the target wins
    assert alice.attribute_times["created_at"] == at(1)
    # And set-once holds afterwards: a later set does not change it.
    send(identify("phone", "alice", 20, {"createdAt": "2021-01-01T00:00:00Z"}))
    alice.refresh_from_db()
    assert alice.attributes["created_at"] == "2019-01-01T00:00:00Z"


# -- limits ----------------------------------------------------------------------------------


def test_key_length_limit(api_app: ApiApp) -> None:
    body = ok(patch(api_app, "u-1", {"attributes": {"k" * 128: 1, "k" * 129: 2}}))
    assert [(e["code"]) for e in body["attribute_errors"]] == ["key_too_long"]
    assert _profile(api_app, "u-1").attributes == {"k" * 128: 1}
    assert QuarantinedAttribute.objects.get().key == "k" * 129


def test_string_value_limit_is_8_kb_of_utf8(api_app: ApiApp) -> None:
    body = ok(
        patch(
            api_app,
            "u-1",
            {
                "attributes": {
                    "fits": "x" * 8192,
                    "too_long": "x" * 8193,
                    "too_long_utf8": "é" * 4097,  # 8194 bytes
                    "nested_too_long": {"a": ["y" * 9000]},
                }
            },
        )
    )
    assert sorted((e["key"], e["code"]) for e in body["attribute_errors"]) == [
        ("nested_too_long", "value_too_long"),
        ("too_long", "value_too_long"),
        ("too_long_utf8", "value_too_long"),
    ]
    assert set(_profile(api_app, "u-1").attributes) == {"fits"}


def test_objects_nest_at_most_five_levels(api_app: ApiApp) -> None:
    five = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    six = {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}
    body = ok(patch(api_app, "u-1", {"attributes": {"five": five, "six": six}}))
    assert [(e["key"], e["code"]) for e in body["attribute_errors"]] == [("six", "too_deep")]
    assert _profile(api_app, "u-1").attributes == {"five": five}
    assert QuarantinedAttribute.objects.get().value == six


def test_a_profile_holds_at_most_500_attributes(api_app: ApiApp) -> None:
    ok(patch(api_app, "u-1", {"attributes": {f"k{i}": i for i in range(499)}}))
    body = ok(patch(api_app, "u-1", {"attributes": {"new1": 1, "new2": 2, "k0": "changed"}}))
    assert [(e["key"], e["code"]) for e in body["attribute_errors"]] == [
        ("new2", "too_many_attributes")
    ]
    attributes = _profile(api_app, "u-1").attributes
    assert len(attributes) == 500 and attributes["new1"] == 1 and attributes["k0"] == "changed"
    # Unsetting makes room again.
    body = ok(
        patch(
            api_app,
            "u-1",
            {
                "operations": [
                    {"op": "unset", "key": "k1"},
                    {"op": "set", "key": "new2", "value": 2},
                ]
            },
        )
    )
    assert body["attribute_errors"] == []
    assert len(_profile(api_app, "u-1").attributes) == 500


def test_segment_limits_are_per_attribute(api_app: ApiApp, send: Send) -> None:
    result = send(identify("d1", "u-1", 0, {"ok": 1, "k" * 200: 1, "deep": [[[[[["x"]]]]]]}))
    assert result["accepted"] == 1
    assert _profile(api_app, "u-1").attributes == {"ok": 1}
    assert sorted(QuarantinedAttribute.objects.values_list("code", flat=True)) == [
        "key_too_long",
        "too_deep",
    ]


# -- discovered fields and their promotion -----------------------------------------------------


def test_unknown_keys_are_kept_and_listed_as_discovered(
    api_app: ApiApp, send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(
        identify("d1", "u-1", 0, {"plan": "pro", "seats": 3, "email": "a@example.com"}),
        identify("d2", "u-2", 0, {"plan": "free", "trial_ends": "2025-01-31", "beta": True}),
    )
    assert _profile(api_app, "u-1").attributes["plan"] == "pro"  # kept as custom attribute
    rows = {
        row.key: (row.sample_type, row.seen_count)
        for row in DiscoveredField.objects.filter(app=api_app.app)
    }
    assert rows == {
        "plan": ("string", 2),
        "seats": ("number", 1),
        "trial_ends": ("date", 1),
        "beta": ("boolean", 1),
    }  # email is a configured field: not discovered
    first = DiscoveredField.objects.get(app=api_app.app, key="plan")
    send(identify("d1", "u-1", 1, {"plan": "team"}))
    again = DiscoveredField.objects.get(app=api_app.app, key="plan")
    assert again.seen_count == 3
    assert again.first_seen_at == first.first_seen_at and again.last_seen_at > first.last_seen_at


def test_a_promoted_field_is_validated_from_then_on(
    api_app: ApiApp, send: Send, django_capture_on_commit_callbacks: Any
) -> None:
    send(identify("d1", "u-1", 0, {"seats": 3}))
    discovered = DiscoveredField.objects.get(app=api_app.app, key="seats")
    field = discovered_field_promote(discovered=discovered)
    assert (field.key, field.field_type, field.label) == ("seats", "number", "Seats")
    assert (
        field.display_order
        > ProfileField.objects.get(app=api_app.app, key="created_at").display_order
    )
    assert not DiscoveredField.objects.filter(app=api_app.app, key="seats").exists()
    send(identify("d1", "u-1", 1, {"seats": "5"}), identify("d2", "u-2", 1, {"seats": "many"}))
    assert _profile(api_app, "u-1").attributes["seats"] == 5
    assert "seats" not in _profile(api_app, "u-2").attributes
    assert QuarantinedAttribute.objects.get().value == "many"
    # A configured key is no longer discovered.
    assert not DiscoveredField.objects.filter(app=api_app.app, key="seats").exists()


def test_field_errors_on_a_bad_body_apply_nothing(api_app: ApiApp) -> None:
    ok(patch(api_app, "u-1", {"attributes": {"plan": "free"}}))
    body = {"operations": [{"op": "set", "key": "plan", "value": "pro"}, {"op": "explode"}]}
    error(patch(api_app, "u-1", body), 400, "invalid_operation")
    assert _profile(api_app, "u-1").attributes == {"plan": "free"}
