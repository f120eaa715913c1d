"""Entity ids, URNs, attribute and type names."""

from __future__ import annotations

import pytest

from ngsi._errors import BadRequestData
from ngsi._ids import (
    entity_urn,
    is_valid_uri,
    parse_urn,
    validate_attribute_name,
    validate_entity_id,
    validate_type_name,
    validate_uri,
)


@pytest.mark.parametrize(
    ("entity_type", "local_id", "expected"),
    [
        ("Device", "70b3d57ed0000001", "urn:ngsi-ld:Device:70b3d57ed0000001"),
        ("AirQualityObserved", "berlin:mitte:01", "urn:ngsi-ld:AirQualityObserved:berlin:mitte:01"),
        (
            "ParkingSpot",
            "santander_daoiz-velarde.1~5",
            "urn:ngsi-ld:ParkingSpot:santander_daoiz-velarde.1~5",
        ),
        ("Street", "K%C3%B6nigsallee", "urn:ngsi-ld:Street:K%C3%B6nigsallee"),
        ("Thing", "a@b+c,d!e$f&g*h", "urn:ngsi-ld:Thing:a@b+c,d!e$f&g*h"),
    ],
)
def test_entity_urn_builds_and_parses_back(entity_type: str, local_id: str, expected: str) -> None:
    urn = entity_urn(entity_type, local_id)
    assert urn == expected
    assert parse_urn(urn) == (entity_type, local_id)
    assert is_valid_uri(urn)
    assert validate_entity_id(urn) == urn


@pytest.mark.parametrize(
    ("local_id", "reason"),
    [
        ("", "it is empty"),
        ("room 1", "' ' at position 4 is not allowed (whitespace"),
        ("a/b", "'/' at position 1 is not allowed (it would split the /entities/{id} URL path)"),
        ("a?b", "'?' at position 1 is not allowed (it starts a URN query component)"),
        ("a#b", "'#' at position 1 is not allowed (it starts a URN fragment)"),
        ("f(x)", "'(' at position 1 is not allowed (NGSI-LD forbids it)"),
        ("a=b", "'=' at position 1 is not allowed (NGSI-LD forbids it)"),
        ("it's", '"\'" at position 2 is not allowed (NGSI-LD forbids it)'),
        ("Königsallee", "'ö' at position 1 is not allowed (URNs are ASCII; percent-encode it)"),
        ("100%", "the '%' at position 3 does not start a two-digit hex escape"),
        ("a\tb", "whitespace and control characters are not allowed"),
    ],
)
def test_entity_urn_rejects_bad_local_ids_and_says_why(local_id: str, reason: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        entity_urn("Device", local_id)
    detail = caught.value.detail or ""
    assert f"local id {local_id!r}" in detail
    assert reason in detail


@pytest.mark.parametrize(
    ("entity_type", "reason"),
    [
        ("", "it is empty"),
        ("Air Quality", "' ' at position 3"),
        ("a:b", "':' at position 1 is not allowed (it separates the type from the local id)"),
        ("https://smartdatamodels.org/Device", "':' at position 5"),
    ],
)
def test_entity_urn_rejects_bad_types(entity_type: str, reason: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        entity_urn(entity_type, "x")
    assert f"entity type {entity_type!r}" in (caught.value.detail or "")
    assert reason in (caught.value.detail or "")


def test_bad_request_data_carries_a_problem_body() -> None:
    with pytest.raises(BadRequestData) as caught:
        validate_entity_id("sensor 1")
    body = caught.value.to_problem()
    assert body["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert body["status"] == 400
    assert "'sensor 1'" in body["detail"]


@pytest.mark.parametrize(
    "urn",
    [
        "urn:ngsi-ld:Device",
        "urn:ngsi-ld::x",
        "urn:ngsi-ld:Device:",
        "urn:ietf:rfc:2648",
        "https://example.org/Device/1",
        "urn:ngsi-ld:Device:a b",
    ],
)
def test_parse_urn_rejects_other_shapes(urn: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        parse_urn(urn)
    assert repr(urn) in (caught.value.detail or "")


def test_parse_urn_keeps_colons_in_the_local_id() -> None:
    assert parse_urn("urn:ngsi-ld:OnStreetParking:santander:daoiz_velarde_1_5") == (
        "OnStreetParking",
        "santander:daoiz_velarde_1_5",
    )


@pytest.mark.parametrize(
    "uri",
    [
        "urn:ngsi-ld:Device:70b3d57ed0000001",
        "urn:ngsi-ld::wastecontainer-Osuna-100",
        "urn:ngsi:MuseoDemo_Room_1",
        "URN:NGSI-LD:Device:1",
        "https://smartdatamodels.org/dataModel.Environment/temperature",
        "http://example.org/sensor/1?x=1#frag",
        "uri:ngsi:Device:T2-NP-018",
        "FlowObserved:BFO-NCE-MNCA-SP-001",
        "mailto:ops@stadt.example",
        "urn:isbn:9780387359731",
        "https://example.org/Straße",
        "https://example.org/a%20b",
    ],
)
def test_valid_uris(uri: str) -> None:
    assert is_valid_uri(uri)
    assert validate_entity_id(uri) == uri


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", "it is empty"),
        ("device-9845A", "it has no scheme"),
        (
            "Spain-WeatherForecast-46005_2016-12-01T18:00:00",
            "'Spain-WeatherForecast-46005_2016-12-01T18' before the first ':' is not a URI scheme",
        ),
        ("2020-03-17T08:45:00.209Z", "'2020-03-17T08' before the first ':' is not a URI scheme"),
        (
            "urn:ngsi-ld:Device:a b",
            "it contains whitespace or a control character (' ' at position 20)",
        ),
        ("urn:ngsi-ld:Device:a\nb", "control character"),
        ("urn:", "there is nothing after the scheme"),
        ("https://example.org/<x>", "it contains '<', which is not allowed in a URI"),
        ("https://example.org/{x}", "it contains '{'"),
        ("https://example.org/100%", "'%' that does not start a two-digit hex escape"),
        ("urn:x:1", "namespace identifier of 2 to 32"),
        ("urn:-ab:1", "namespace identifier of 2 to 32"),
        ("urn:ngsi-ld", "namespace identifier"),
        ("urn:ngsi-ld:", "the URN has nothing after 'urn:ngsi-ld:'"),
    ],
)
def test_invalid_uris_name_the_id_and_the_reason(uri: str, reason: str) -> None:
    assert not is_valid_uri(uri)
    with pytest.raises(BadRequestData) as caught:
        validate_entity_id(uri)
    detail = caught.value.detail or ""
    assert detail.startswith(f"entity id {uri!r} is not an absolute URI: ")
    assert reason in detail


@pytest.mark.parametrize("value", [None, 42, ["urn:a:b"]])
def test_non_strings_are_not_uris(value: object) -> None:
    assert not is_valid_uri(value)
    with pytest.raises(BadRequestData, match="not a string"):
        validate_uri(value, what="datasetId")


def test_validate_uri_names_what_it_checks() -> None:
    with pytest.raises(BadRequestData, match=r"^400 BadRequestData: datasetId 'x' is not"):
        validate_uri("x", what="datasetId")


@pytest.mark.parametrize(
    "name",
    [
        "temperature",
        "refDevice",
        "LAeq_d",
        "no2",
        "value",  # an entity attribute may be called "value" (SDM Device has one)
        "https://smartdatamodels.org/dataModel.Environment/temperature",
        "schema:name",
        "größe",
    ],
)
def test_valid_attribute_names(name: str) -> None:
    assert validate_attribute_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "attribute name is empty"),
        ("air temperature", "contains whitespace or a control character (' ' at position 3)"),
        ("temp\u00a0c", "whitespace"),
        ("a<b", "contains '<' at position 1; NGSI-LD forbids"),
        ('a"b', "contains '\"'"),
        ("it's", 'contains "\'"'),
        ("a=b", "contains '='"),
        ("a;b", "contains ';'"),
        ("f(x)", "contains '('"),
        ("id", "'id' is a member of every entity and cannot name an attribute"),
        ("type", "'type' is a member of every entity"),
        ("scope", "'scope' is a member"),
        ("@context", "'@context' is a member"),
        ("createdAt", "'createdAt' is a member"),
        ("modifiedAt", "'modifiedAt' is a member"),
        ("@id", "starts with '@', which JSON-LD reserves"),
    ],
)
def test_invalid_attribute_names_say_why(name: str, reason: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        validate_attribute_name(name)
    assert reason in (caught.value.detail or "")


@pytest.mark.parametrize(
    "name", ["value", "object", "observedAt", "unitCode", "datasetId", "languageMap", "type"]
)
def test_sub_attribute_names_cannot_be_attribute_members(name: str) -> None:
    validate_attribute_name("temperature", sub_attribute=True)
    with pytest.raises(BadRequestData, match="cannot name a sub-attribute"):
        validate_attribute_name(name, sub_attribute=True)


def test_non_string_attribute_name() -> None:
    with pytest.raises(BadRequestData, match="must be a string, got int"):
        validate_attribute_name(3)


@pytest.mark.parametrize(
    "name", ["AirQualityObserved", "Device", "https://smartdatamodels.org/dataModel.Device/Device"]
)
def test_valid_type_names(name: str) -> None:
    assert validate_type_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "type name is empty"),
        ("Air Quality", "type name 'Air Quality' contains whitespace"),
        ("Device(1)", "type name 'Device(1)' contains '('"),
    ],
)
def test_invalid_type_names(name: str, reason: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        validate_type_name(name)
    assert reason in (caught.value.detail or "")
