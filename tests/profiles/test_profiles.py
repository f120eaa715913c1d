"""Device profiles: the schema and model checks with file/line errors, the catalog with
built-ins and an admin's folder, `extends`, overrides, and the transform steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.codecs import CayenneLPPCodec, JavaScriptCodec
from agents.profiles import (
    BUILTIN_PROFILES_DIR,
    AttributeSpec,
    MapValues,
    ProfileCatalog,
    ProfileError,
    ProfileNotFound,
    TransformError,
    load_profile,
    parse_profile,
)
from schemas import validate_document

BUILTINS = sorted(path.stem for path in BUILTIN_PROFILES_DIR.glob("*.yaml"))

MINIMAL = """\
name: minimal
codec: {name: cayennelpp}
entities:
  - type: AirQualityObserved
    attributes:
      co2: {source: concentration_3, unit: "59"}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_builtin_profiles_cover_the_city_sensors() -> None:
    assert set(BUILTINS) == {
        "air-quality-lpp",
        "temperature-humidity-lpp",
        "noise-level",
        "parking-occupancy-lpp",
        "traffic-counter",
        "people-counter",
        "water-level-lpp",
        "soil-moisture-lpp",
        "weather-station-lpp",
        "ttn-normalized",
    }
    catalog = ProfileCatalog()
    assert catalog.problems() == {}
    assert catalog.names() == BUILTINS
    for name in BUILTINS:
        profile = catalog.get(name)
        assert profile.builtin
        assert profile.name == name
        assert profile.description


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_files_validate_against_the_schema(name: str) -> None:
    import yaml

    data = yaml.safe_load((BUILTIN_PROFILES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    assert validate_document("device-profile", data) == []


def test_a_minimal_profile_has_the_defaults() -> None:
    profile = parse_profile(MINIMAL)
    assert profile.time.prefer == ("payload", "gateway", "network-server")
    assert profile.device.radio is True
    assert profile.device_category == ("sensor",)
    spec = profile.entities[0].attributes["co2"]
    assert spec.source == ("concentration_3",)
    assert spec.unit == "59"
    assert spec.unit_given


def test_schema_errors_name_the_file_the_path_and_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.yaml",
        "name: bad\n"
        "codec: {name: cayennelpp}\n"
        "entities:\n"
        "  - type: AirQualityObserved\n"
        "    attributes:\n"
        "      co2: {source: concentration_3, unit: ppm}\n",
    )
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    (problem,) = caught.value.problems
    assert problem.path == "entities/0/attributes/co2/unit"
    assert problem.line == 6
    assert "UN/CEFACT" in problem.message
    assert str(caught.value).startswith(f"{path}:6: entities/0/attributes/co2/unit: 'ppm'")


def test_model_errors_name_the_attribute_and_suggest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "typo.yaml",
        MINIMAL.replace("name: minimal", "name: typo")
        + "      temprature: temperature_1\n"
        + "  - type: Nope\n    attributes:\n      x: y\n",
    )
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    problems = {p.path: p for p in caught.value.problems}
    assert "did you mean 'temperature'" in problems["entities/0/attributes/temprature"].message
    assert problems["entities/0/attributes/temprature"].line == 7
    assert (
        "no Smart Data Model is registered for type 'Nope'" in problems["entities/1/type"].message
    )


@pytest.mark.parametrize(
    ("attributes", "path", "expected"),
    [
        ("      refDevice: x_1\n", "entities/0/attributes/refDevice", "written by the agent"),
        ("      dateObserved: x_1\n", "entities/0/attributes/dateObserved", "written by the agent"),
        ("      airQualityIndex: x_1\n", "entities/0/attributes/airQualityIndex/unit", "unit"),
        ("      illuminance: x_1\n", "entities/0/attributes/illuminance", "extra: true"),
        (
            "      illuminance: {source: x_1, extra: true}\n",
            "entities/0/attributes/illuminance/unit",
            "state `unit:`",
        ),
    ],
)
def test_what_a_profile_may_map(attributes: str, path: str, expected: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile(MINIMAL + attributes)
    found = {p.path: p.message for p in caught.value.problems}
    assert path in found, found
    assert expected in found[path]


def test_an_extra_attribute_with_a_unit_is_allowed() -> None:
    profile = parse_profile(MINIMAL + "      illuminance: {source: x_1, extra: true, unit: LUX}\n")
    assert profile.entities[0].attributes["illuminance"].extra


def test_device_attributes_are_only_what_a_device_reports_about_itself() -> None:
    base = MINIMAL + "device:\n  attributes:\n"
    parse_profile(base + "    batteryLevel: {source: percentage_0, unit: C62}\n")
    with pytest.raises(ProfileError, match="belongs to the registration"):
        parse_profile(base + "    deviceState: {source: state_0, unit: null}\n")


def test_a_bad_static_value_is_refused() -> None:
    with pytest.raises(ProfileError, match="static/typeofLocation"):
        parse_profile(
            MINIMAL + "    static:\n      typeofLocation: underwater\n",
        )


def test_an_observation_over_a_period_needs_one() -> None:
    text = (
        "name: noise\ncodec: {name: network-server}\nentities:\n"
        "  - type: NoiseLevelObserved\n    attributes:\n      LAeq: {source: laeq, unit: 2N}\n"
    )
    with pytest.raises(ProfileError, match="observation over a period"):
        parse_profile(text)
    assert parse_profile(text.replace("entities:", "reporting_interval: 60\nentities:"))


def test_two_entities_of_one_type_need_their_own_suffix() -> None:
    text = MINIMAL + (
        "  - type: AirQualityObserved\n    attributes:\n      no2: {source: x_2, unit: GQ}\n"
    )
    with pytest.raises(ProfileError, match="id_suffix"):
        parse_profile(text)
    fixed = text.replace(
        "  - type: AirQualityObserved\n    attributes:\n      no2",
        ("  - type: AirQualityObserved\n    id_suffix: no2\n    attributes:\n      no2"),
    )
    assert parse_profile(fixed).entities[1].key == "AirQualityObserved:no2"


def test_yaml_that_does_not_parse_names_its_line() -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile("name: x\ncodec: [\n", source="broken.yaml")
    assert caught.value.problems[0].line is not None
    assert str(caught.value).startswith("broken.yaml:")


def test_a_user_profile_overrides_a_builtin_and_can_extend_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        "air-quality-lpp.yaml",
        "name: air-quality-lpp\nextends: air-quality-lpp\ndescription: ours\n"
        "reporting_interval: 60\n",
    )
    catalog = ProfileCatalog(tmp_path)
    profile = catalog.get("air-quality-lpp")
    assert not profile.builtin
    assert profile.reporting_interval == 60
    assert profile.description == "ours"
    builtin = catalog.builtin("air-quality-lpp")
    assert builtin is not None
    assert profile.entities == builtin.entities
    (entry,) = [e for e in catalog.entries() if e.name == "air-quality-lpp"]
    assert entry.origin == "user"
    assert entry.overrides_builtin


def test_a_broken_override_does_not_fall_back_silently(tmp_path: Path) -> None:
    write(tmp_path, "noise-level.yaml", "name: noise-level\ncodec: {name: x}\n")
    catalog = ProfileCatalog(tmp_path)
    with pytest.raises(ProfileError):
        catalog.get("noise-level")
    assert "noise-level" in catalog.problems()
    assert catalog.get("air-quality-lpp").builtin  # the others still load


def test_extends_takes_the_base_members_and_resolves_codec_paths_next_to_the_file(
    tmp_path: Path,
) -> None:
    codec = tmp_path / "codecs" / "th.js"
    codec.parent.mkdir()
    codec.write_text(
        "function decodeUplink(input) { return {data: {t: input.bytes[0]}}; }\n"
        "function normalizeUplink(input) { return {data: {air: {temperature: input.data.t}}}; }\n",
        encoding="utf-8",
    )
    write(
        tmp_path,
        "acme-th.yaml",
        "name: acme-th\nextends: ttn-normalized\n"
        "codec: {name: javascript, config: {file: codecs/th.js, output: normalized}}\n",
    )
    catalog = ProfileCatalog(tmp_path)
    profile = catalog.get("acme-th")
    assert profile.entities == catalog.get("ttn-normalized").entities
    assert profile.codec_config()["base_dir"] == str(tmp_path)
    built = catalog.codec("acme-th")
    assert isinstance(built, JavaScriptCodec)
    assert built.decode(bytes([21]), f_port=1).data == {"air.temperature": 21}
    assert catalog.codec("acme-th") is built
    assert isinstance(catalog.codec("air-quality-lpp"), CayenneLPPCodec)


def test_extends_cycles_and_unknown_bases_are_errors(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: a\nextends: b\n")
    write(tmp_path, "b.yaml", "name: b\nextends: a\n")
    write(tmp_path, "c.yaml", "name: c\nextends: nowhere\n")
    catalog = ProfileCatalog(tmp_path)
    with pytest.raises(ProfileError, match="cycle"):
        catalog.get("a")
    with pytest.raises(ProfileError, match="nowhere"):
        catalog.get("c")


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ProfileNotFound, match="air-quality-lpp"):
        ProfileCatalog(tmp_path).get("nope")


def test_two_files_with_one_name_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", MINIMAL.replace("minimal", "same"))
    write(tmp_path, "two.yaml", MINIMAL.replace("minimal", "same"))
    catalog = ProfileCatalog(tmp_path)
    assert catalog.get("same").path == tmp_path / "one.yaml"
    assert any("has this name already" in str(e) for e in catalog.problems().values())


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        ProfileCatalog(tmp_path / "nope")


def test_reload_picks_up_a_new_file(tmp_path: Path) -> None:
    catalog = ProfileCatalog(tmp_path)
    assert "minimal" not in catalog
    write(tmp_path, "minimal.yaml", MINIMAL)
    catalog.reload()
    assert "minimal" in catalog


# -- transforms ----------------------------------------------------------------------------


def spec(**data: object) -> AttributeSpec:
    return AttributeSpec.model_validate({"source": "x", **data})


def test_transforms_run_in_order() -> None:
    assert spec(transforms=[{"scale": 0.01}, {"round": 3}]).transform(54.5) == 0.545
    assert spec(transforms=[{"offset": -273.15}, {"round": 1}]).transform(294.45) == 21.3
    assert spec(transforms=[{"round": 1}, {"offset": 0.04}]).transform(1.26) == pytest.approx(1.34)
    assert spec(transforms=[{"round": 0}]).transform(2.6) == 3
    assert isinstance(spec(transforms=[{"round": 0}]).transform(2.6), int)
    clamp = spec(transforms=[{"scale": 0.01}, {"clamp": {"min": 0, "max": 1}}])
    assert clamp.transform(104) == 1
    assert clamp.transform(-3) == 0
    assert clamp.transform(50) == 0.5


def test_an_enum_map_looks_values_up_as_text() -> None:
    step = spec(transforms=[{"map": {0: "free", "1": "occupied", True: "yes"}}])
    assert step.transform(0) == "free"
    assert step.transform(1) == "occupied"
    assert step.transform(1.0) == "occupied"
    assert step.transform(True) == "yes"
    with pytest.raises(TransformError, match="no entry for 7"):
        step.transform(7)
    assert spec(transforms=[{"map": {"0": "free"}, "default": "unknown"}]).transform(7) == "unknown"
    assert isinstance(step.transforms[0], MapValues)


def test_numeric_steps_refuse_text() -> None:
    with pytest.raises(TransformError, match="scale needs a number"):
        spec(transforms=[{"scale": 2}]).transform("12")
    with pytest.raises(TransformError, match="needs a number"):
        spec(transforms=[{"offset": 2}]).transform(True)


def test_a_transform_step_has_one_operation() -> None:
    with pytest.raises(ProfileError, match="exactly one of scale, offset, round, clamp, map"):
        parse_profile(
            MINIMAL.replace('unit: "59"', 'unit: "59", transforms: [{scale: 1, offset: 2}]')
        )


def test_yaml_map_keys_become_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "parking.yaml",
        "name: parking\ncodec: {name: cayennelpp}\nentities:\n"
        "  - type: ParkingSpot\n    attributes:\n"
        "      status:\n        source: presence_1\n        unit: null\n"
        "        transforms: [{map: {0: free, 1: occupied}}]\n"
        "    static: {category: [onStreet]}\n",
    )
    profile = load_profile(path)
    step = profile.entities[0].attributes["status"].transforms[0]
    assert isinstance(step, MapValues)
    assert step.map == {"0": "free", "1": "occupied"}
