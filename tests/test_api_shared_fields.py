"""SharedFieldsSerializer (synstar.api): the gateway endpoints' serializers build their fields once per
process; they must validate, refuse and render exactly as the same serializers with DRF's per-instance
fields do."""

from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework import serializers

from billing.apis.metering import HoldCreateApi, UsageReportApi
from billing.demo import catalog_load
from billing.models import GatewayKey, TokenGroup
from billing.services.metering import metering_hold, metering_report
from billing.services.metering.pricing import Usage
from billing.services.tokens import gateway_key_create, token_create
from synstar.api import SharedFieldsSerializer
from tests.factories import make_user


def plain(cls):
    """The same serializer with DRF's own fields: copied for every instance."""
    return type(f"Plain{cls.__name__}", (cls,), {"fields": serializers.Serializer.__dict__["fields"]})


INPUTS = [HoldCreateApi.InputSerializer, UsageReportApi.InputSerializer]
NAMES = sorted({name for cls in INPUTS for name in cls._declared_fields} | {"extra"})
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**12), max_value=10**12), st.floats(allow_nan=True),
    st.text(max_size=120), st.sampled_from(["sk-x", " gpt-4o ", "", "10.0.0.1", "::ffff:10.0.0.1", "1.5", "NaN",
                                            "succeeded", "failed", "1e3", "0.0000001", "x" * 101, "500"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@pytest.mark.parametrize("cls", INPUTS, ids=lambda cls: cls.__qualname__)
@hsettings(max_examples=300, deadline=None)
@given(data=st.one_of(st.dictionaries(st.sampled_from(NAMES), VALUES), VALUES))
def test_input_validates_and_refuses_as_drf_does(cls, data):
    shared, drf = cls(data=data), plain(cls)(data=data)
    assert shared.is_valid() == drf.is_valid()
    assert shared.errors == drf.errors
    if not drf.errors:
        assert shared.validated_data == drf.validated_data


@pytest.mark.parametrize(
    ("cls", "data"),
    [
        (HoldCreateApi.InputSerializer, {"token": "sk-a", "model": "gpt-4o", "input_tokens": 500, "max_output_tokens": 500}),
        (HoldCreateApi.InputSerializer, {"token": " sk-a ", "model": "m", "input_tokens": "7.0", "max_output_tokens": None,
                                         "units": "1.5", "client_ip": "::ffff:10.0.0.1", "request_id": " r ", "x": 1}),
        (HoldCreateApi.InputSerializer, {"token": 5, "model": "m", "endpoint": "/v1/images", "client_ip": "10.0.0.1"}),
        (UsageReportApi.InputSerializer, {"status": "succeeded", "input_tokens": 1, "output_tokens": 2, "units": 3}),
        (UsageReportApi.InputSerializer, {"status": "failed", "error": ""}),
    ],
)
def test_valid_input_gives_what_drf_gives(cls, data):
    shared, drf = cls(data=data), plain(cls)(data=data)
    assert shared.is_valid() and drf.is_valid()
    assert shared.validated_data == drf.validated_data


def test_the_fields_are_built_once_per_class():
    cls = HoldCreateApi.InputSerializer
    assert cls(data={}).fields is cls(data={}).fields
    assert cls(data={}).fields is not HoldCreateApi.OutputSerializer().fields


def test_with_a_context_or_partial_an_instance_has_its_own_fields():
    class Small(SharedFieldsSerializer):
        name = serializers.CharField()

    with_context = Small(data={"name": " x "}, context={"request": None})
    assert with_context.is_valid() and with_context.validated_data == {"name": "x"}
    assert with_context.fields["name"].context == {"request": None}
    assert with_context.fields is not Small(data={}).fields
    partial = Small(data={}, partial=True)
    assert partial.is_valid() and partial.validated_data == {}
    assert not Small(data={}).is_valid()


@pytest.mark.django_db
def test_output_renders_as_drf_does():
    catalog_load()
    gateway, _ = gateway_key_create(name="edge-shared")
    user = make_user(balance="9.50")
    token, raw = token_create(user=user, name="t", group=TokenGroup.objects.get(name="default"), quota=None)
    gateway = GatewayKey.objects.get(pk=gateway.pk)
    held = metering_hold(gateway=gateway, token_key=raw, model_name="gpt-4o", endpoint="/v1/chat/completions",
                         input_tokens=1200, max_output_tokens=800, request_id="req-1")
    retried = metering_hold(gateway=gateway, token_key=raw, model_name="gpt-4o", endpoint="/v1/chat/completions",
                            input_tokens=1200, max_output_tokens=800, request_id="req-1")  # read back: no `available`
    per_unit = metering_hold(gateway=gateway, token_key=raw, model_name="dall-e-3", endpoint="/v1/images",
                             units=Decimal(2))
    for generation in (held, retried, per_unit):
        cls = HoldCreateApi.OutputSerializer
        assert cls(generation).data == plain(cls)(generation).data
    with timezone.override("Asia/Shanghai"):  # the zone the time zone middleware activates
        cls = HoldCreateApi.OutputSerializer
        assert cls(held).data == plain(cls)(held).data
        assert cls(held).data["deadline"].endswith("+08:00")
    reported = metering_report(gateway=gateway, public_id=held.public_id, outcome="succeeded",
                               usage=Usage(input_tokens=1200, output_tokens=5000))
    cls = UsageReportApi.OutputSerializer
    assert cls(reported).data == plain(cls)(reported).data


def test_it_adds_no_description_to_the_openapi_schema():
    assert SharedFieldsSerializer.__doc__ is None  # a docstring would describe every subclass's component
