"""The page in headless Chromium (Debian's `chromium` and `chromium-driver`), driven by Selenium,
against the embedded broker with entities written through the client."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ngsi import Client
from tests.broker.conftest import SDM_CONTEXTS, RunningBroker, start_broker
from tests.web.conftest import RunningWeb, start_web, write_air_quality, write_device

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=(
        "headless Chromium is not installed (/usr/bin/chromium): `make test` installs Debian's "
        "chromium and chromium-driver, or run `apt-get install -y chromium chromium-driver`"
    ),
)

TENANT = "page"
NOW = datetime.now(UTC).replace(microsecond=0)
CORNELIUS = ("70B3D57ED0000001", "Corneliusstraße air", (6.7835, 51.2135), 2)
MEROWINGER = ("70B3D57ED0000002", "Merowingerstraße air", (6.7769, 51.2029), 40)
CELLAR = ("70B3D57ED0000003", "Cellar air", None, 600)
HISTORY = 3
WAIT = 15.0

# Chromium as root, with nothing reaching for the network (see the machine notes)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1400,1300",
)


@pytest.fixture(scope="module")
def city(broker: RunningBroker) -> RunningBroker:
    """Three devices in one tenant: two with a location, one without; each with its
    AirQualityObserved written HISTORY times (one per uplink)."""
    with Client(broker.url, tenant=TENANT, profile="embedded") as client:
        for dev_eui, name, location, age in (CORNELIUS, MEROWINGER, CELLAR):
            last = NOW - timedelta(minutes=age)
            write_device(client, dev_eui, name=name, location=location, last_seen=last)
            for step in range(HISTORY - 1, -1, -1):
                write_air_quality(
                    client,
                    dev_eui,
                    observed_at=last - timedelta(minutes=10 * step),
                    no2=40.0 + step,
                    temperature=7.5 + step,
                    location=location,
                )
    return broker


@pytest.fixture(scope="module")
def web(city: RunningBroker) -> Iterator[RunningWeb]:
    with start_web(
        broker_url=city.url, tenant=TENANT, broker_profile="embedded", refresh_seconds=0.5
    ) as running:
        yield running


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMEDRIVER.exists():
        pytest.fail(
            f"{CHROMIUM} is installed but {CHROMEDRIVER} is not: apt-get install -y chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def wait_until(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        raise AssertionError(f"waited {WAIT} s for {what}") from None


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


# The page redraws what changed at every refresh; reads go through one script call each, so
# that they see one consistent state of the document.


def rows(driver: Any) -> list[dict[str, str]]:
    """The list's rows, top to bottom: device id, name, text, aria-selected."""
    found: list[dict[str, str]] = driver.execute_script(
        """return [...document.querySelectorAll('#device-rows tr')].map((r) => ({
            id: r.dataset.deviceId, name: r.querySelector('.device-name').textContent,
            text: r.innerText, selected: r.getAttribute('aria-selected')}));"""
    )
    return found


def row_text(driver: Any, dev_eui: str) -> str:
    [found] = [r for r in rows(driver) if r["id"] == f"urn:ngsi-ld:Device:{dev_eui}"]
    return found["text"]


def value_of(driver: Any, dev_eui: str, attribute: str) -> str | None:
    """The text of one latest value in a device's row (`40 µg/m³`)."""
    text: str | None = driver.execute_script(
        """const cell = document.querySelector(
            `#device-rows tr[data-device-id="urn:ngsi-ld:Device:${arguments[0]}"] ` +
            `.reading[data-attr="${arguments[1]}"] .value`);
        return cell ? cell.textContent : null;""",
        dev_eui,
        attribute,
    )
    return text


def markers(driver: Any) -> list[dict[str, str]]:
    found: list[dict[str, str]] = driver.execute_script(
        """return [...document.querySelectorAll('#map-markers .marker')].map((m) => ({
            id: m.dataset.deviceId, label: m.getAttribute('aria-label')}));"""
    )
    return found


def point_titles(driver: Any) -> list[str]:
    found: list[str] = driver.execute_script(
        """return [...document.querySelectorAll('#chart circle.point title')]
            .map((t) => t.textContent);"""
    )
    return found


def text_of(driver: Any, element_id: str) -> str:
    text: str = driver.execute_script(
        "return document.getElementById(arguments[0]).innerText;", element_id
    )
    return text


def press_enter_on_row(driver: Any, dev_eui: str) -> None:
    """Focus the device's row and press Enter (again if a refresh replaced the row)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.keys import Keys

    for _ in range(5):
        [target] = css(driver, f'#device-rows tr[data-device-id="urn:ngsi-ld:Device:{dev_eui}"]')
        try:
            driver.execute_script("arguments[0].focus();", target)
            target.send_keys(Keys.ENTER)
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"the row of {dev_eui} kept being replaced")


def open_page(driver: Any, web: RunningWeb) -> None:
    driver.get(web.url + "/")
    wait_until(driver, lambda d: len(rows(d)) == 3, "three rows in the list")


def severe_console_messages(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_markers_and_list_show_the_devices(driver: Any, web: RunningWeb) -> None:
    open_page(driver, web)
    assert driver.title == "Drehscheibe: city sensors"
    found = wait_until(driver, markers, "the markers")
    # the cellar sensor has no location: in the list, not on the map
    assert sorted(marker["id"] for marker in found) == [
        f"urn:ngsi-ld:Device:{CORNELIUS[0]}",
        f"urn:ngsi-ld:Device:{MEROWINGER[0]}",
    ]
    [label] = [m["label"] for m in found if m["id"].endswith(CORNELIUS[0])]
    assert label.startswith(f"{CORNELIUS[1]}: ")
    assert "no2 40 µg/m³" in label
    assert "batteryLevel 87 %" in label
    assert re.search(r"; last seen \d+ min ago$", label)

    # sorted by last seen, newest first
    assert [r["name"] for r in rows(driver)] == [CORNELIUS[1], MEROWINGER[1], CELLAR[1]]
    assert value_of(driver, CORNELIUS[0], "no2") == "40 µg/m³"
    assert value_of(driver, CORNELIUS[0], "temperature") == "7.5 °C"
    cornelius = row_text(driver, CORNELIUS[0])
    assert "87 %" in cornelius
    assert re.search(r"\b\d+ min ago\b", cornelius)
    assert "10 h ago" in row_text(driver, CELLAR[0])
    assert not driver.find_element("id", "empty").is_displayed()
    assert severe_console_messages(driver) == []


def test_a_value_updates_after_a_new_uplink_without_reloading(
    driver: Any, web: RunningWeb, city: RunningBroker
) -> None:
    open_page(driver, web)
    driver.execute_script("window.sameDocument = true;")
    dev_eui = CORNELIUS[0]
    assert value_of(driver, dev_eui, "no2") == "40 µg/m³"

    with Client(city.url, tenant=TENANT, profile="embedded") as client:
        write_air_quality(client, dev_eui, observed_at=datetime.now(UTC), no2=57.5, temperature=9)
        write_device(client, dev_eui, name=CORNELIUS[1], location=None, last_seen=datetime.now(UTC))

    wait_until(driver, lambda d: value_of(d, dev_eui, "no2") == "57.5 µg/m³", "the new value")
    assert value_of(driver, dev_eui, "temperature") == "9 °C"
    assert re.search(r"just now|\d+ s ago", row_text(driver, dev_eui))
    assert driver.execute_script("return window.sameDocument === true;")


def test_selecting_a_device_draws_its_history(driver: Any, web: RunningWeb, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    open_page(driver, web)
    dev_eui, name = MEROWINGER[0], MEROWINGER[1]
    press_enter_on_row(driver, dev_eui)  # keyboard, as the list promises

    wait_until(driver, lambda d: d.find_element("id", "detail").is_displayed(), "the detail")
    assert text_of(driver, "detail-heading") == name
    [selected] = [r for r in rows(driver) if r["selected"] == "true"]
    assert selected["id"] == f"urn:ngsi-ld:Device:{dev_eui}"
    assert driver.find_element("id", "popup").is_displayed()
    popup = text_of(driver, "popup")
    assert name in popup
    assert "no2" in popup
    assert "µg/m³" in popup

    wait_until(driver, lambda d: len(point_titles(d)) == HISTORY, "the chart's points")
    assert css(driver, "#chart path.series")
    caption = text_of(driver, "chart-caption")
    assert f"urn:ngsi-ld:AirQualityObserved:{dev_eui}" in caption

    choice = Select(driver.find_element("id", "attr-select"))
    labels = [option.text for option in choice.options]
    assert "AirQualityObserved · no2 (µg/m³)" in labels
    assert "Device · rssi (dBm)" in labels
    choice.select_by_visible_text("AirQualityObserved · no2 (µg/m³)")
    wait_until(driver, lambda d: text_of(d, "chart-caption").startswith("no2 of"), "the no2 chart")
    assert [title.split(" ")[1] for title in point_titles(driver)] == ["42", "41", "40"]

    shot = tmp_path / "page.png"
    driver.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert severe_console_messages(driver) == []


def test_the_list_sorts_by_last_seen_and_name(driver: Any, web: RunningWeb) -> None:
    open_page(driver, web)

    def order(d: Any) -> list[str]:
        return [r["id"][-1] for r in rows(d)]

    def sort_state(key: str) -> str:
        state: str = driver.execute_script(
            'return document.querySelector(`th[data-sort-key="${arguments[0]}"]`)'
            ".getAttribute('aria-sort');",
            key,
        )
        return state

    assert sort_state("lastSeen") == "descending"
    wait_until(driver, lambda d: order(d) == ["1", "2", "3"], "newest first")
    driver.find_element("css selector", 'button[data-sort="lastSeen"]').click()
    assert sort_state("lastSeen") == "ascending"
    assert order(driver) == ["3", "2", "1"]
    driver.find_element("css selector", 'button[data-sort="name"]').click()
    assert sort_state("name") == "ascending"
    assert sort_state("lastSeen") == "none"
    assert order(driver) == ["3", "1", "2"]  # Cellar, Corneliusstraße, Merowingerstraße
    # the order holds across refreshes
    before = text_of(driver, "status")
    wait_until(driver, lambda d: text_of(d, "status") != before, "a refresh")
    assert order(driver) == ["3", "1", "2"]


def test_no_devices_shows_an_empty_state(driver: Any, city: RunningBroker) -> None:
    with start_web(broker_url=city.url, tenant="nobody-here", broker_profile="embedded") as web:
        driver.get(web.url + "/")
        empty = wait_until(
            driver, lambda d: d.find_element("id", "empty").is_displayed() and d, "the empty state"
        )
        assert "No devices yet" in empty.find_element("id", "empty").text
        assert markers(driver) == []
        assert rows(driver) == []
        assert text_of(driver, "status").startswith("0 devices")


class _TileServer(ThreadingHTTPServer):
    daemon_threads = True
    paths: list[str]


class _TileHandler(BaseHTTPRequestHandler):
    # a 1×1 PNG, enough for a tile
    PNG = bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63f8cff0bf1e0005fe02fea35a8b3f0000000049454e44ae426082"
    )

    def do_GET(self) -> None:
        assert isinstance(self.server, _TileServer)
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.PNG)))
        self.end_headers()
        self.wfile.write(self.PNG)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_configured_tiles_are_drawn_under_the_markers(driver: Any, city: RunningBroker) -> None:
    tiles = _TileServer(("127.0.0.1", 0), _TileHandler)
    tiles.paths = []
    thread = threading.Thread(target=tiles.serve_forever, daemon=True)
    thread.start()
    template = f"http://127.0.0.1:{tiles.server_address[1]}/tiles/{{z}}/{{x}}/{{y}}.png"
    try:
        with start_web(
            broker_url=city.url, tenant=TENANT, broker_profile="embedded", tile_url=template
        ) as web:
            open_page(driver, web)
            images = wait_until(driver, lambda d: css(d, "#map-tiles image.tile"), "tile images")
            wait_until(driver, lambda d: tiles.paths, "tile requests")
            assert len(markers(driver)) == 2
            hrefs: set[str] = set(
                driver.execute_script(
                    "return [...document.querySelectorAll('#map-tiles image.tile')]"
                    ".map((i) => i.getAttribute('href'));"
                )
            )
            assert images
            base = template.split("{z}")[0]
            assert all(re.fullmatch(re.escape(base) + r"\d+/\d+/\d+\.png", h) for h in hrefs)
            assert all(re.fullmatch(r"/tiles/\d+/\d+/\d+\.png", path) for path in tiles.paths)
            # the tiles drawn are those under the devices, by Web Mercator
            [zoom] = {int(href[len(base) :].split("/")[0]) for href in hrefs}
            for _, _, (lon, lat), _ in (CORNELIUS, MEROWINGER):
                n = 2**zoom
                x = int((lon + 180) / 360 * n)
                y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
                assert f"{base}{zoom}/{x}/{y}.png" in hrefs
            assert severe_console_messages(driver) == []
    finally:
        tiles.shutdown()
        tiles.server_close()


def test_a_broker_that_goes_away_is_reported_and_the_data_stays(
    driver: Any, tmp_path: Path
) -> None:
    with start_broker(tmp_path / "broker", preload_contexts=dict(SDM_CONTEXTS)) as broker:
        with Client(broker.url, profile="embedded") as client:
            write_device(
                client, CORNELIUS[0], name=CORNELIUS[1], location=CORNELIUS[2], last_seen=NOW
            )
        with start_web(
            broker_url=broker.url,
            broker_profile="embedded",
            refresh_seconds=0.5,
            broker_timeout=1.0,
        ) as web:
            driver.get(web.url + "/")
            wait_until(driver, lambda d: len(markers(d)) == 1, "the marker")
            broker.server.should_exit = True
            broker.thread.join(timeout=15)
            wait_until(
                driver,
                lambda d: "does not answer" in text_of(d, "problems"),
                "the broker's absence reported",
            )
            assert broker.url in text_of(driver, "problems")
            assert text_of(driver, "status") == "Not updated"
            assert [r["name"] for r in rows(driver)] == [CORNELIUS[1]]
            assert len(markers(driver)) == 1
