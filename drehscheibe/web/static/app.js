// The page: reads /api/config once, then /api/devices every few seconds, and draws the map,
// the list and the selected device's history chart. Everything is built with DOM calls and
// textContent (never markup from data), so values from the broker cannot inject anything.

import { drawChart } from "./chart.js";
import { allReadings, dateTime, freshness, instant, relativeTime } from "./format.js";
import { DeviceMap } from "./map.js";

const $ = (id) => document.getElementById(id);

const state = {
  config: null,
  devices: [],
  loaded: false,
  sort: { key: "lastSeen", dir: "desc" },
  selected: null,
  series: null,
  historyToken: 0,
};

let map = null;

function element(name, attributes = {}, text) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const said = body ? [body.title, body.detail].filter(Boolean).join(": ") : "";
    throw new Error(said || `${url} answered ${response.status}`);
  }
  return body;
}

// Readings -----------------------------------------------------------------------------------

function readingItem(entry) {
  const item = element("li", { class: "reading", "data-attr": entry.reading.name, "data-entity": entry.entityId });
  item.append(element("span", { class: "name" }, entry.reading.name), element("span", { class: "value" }, entry.reading.text));
  return item;
}

function describe(device) {
  const values = allReadings(device)
    .map((entry) => `${entry.reading.name} ${entry.reading.text}`)
    .join(", ");
  const seen = device.lastSeen ? `last seen ${relativeTime(device.lastSeen)}` : "never seen";
  return `${device.name}${values ? `: ${values}` : ""}; ${seen}`;
}

// List ---------------------------------------------------------------------------------------

function sortedDevices() {
  const { key, dir } = state.sort;
  const sign = dir === "asc" ? 1 : -1;
  return [...state.devices].sort((a, b) => {
    let order;
    if (key === "name") {
      order = a.name.localeCompare(b.name, undefined, { sensitivity: "base", numeric: true });
    } else {
      order = (instant(a.lastSeen) ?? -Infinity) - (instant(b.lastSeen) ?? -Infinity);
    }
    return sign * order || a.id.localeCompare(b.id);
  });
}

function renderList() {
  const body = $("device-rows");
  const focused = document.activeElement?.closest?.("tr")?.dataset.deviceId;
  const rows = [];
  for (const device of sortedDevices()) {
    const selected = device.id === state.selected;
    const row = element("tr", { tabindex: 0, "data-device-id": device.id, "aria-selected": selected });
    const nameCell = element("td");
    nameCell.append(element("span", { class: "device-name" }, device.name));
    if (device.devEui) nameCell.append(element("span", { class: "eui" }, device.devEui));
    const valuesCell = element("td");
    const values = element("ul", { class: "values readings" });
    for (const entry of allReadings(device).filter((e) => e.type !== "Device")) values.append(readingItem(entry));
    valuesCell.append(values);
    const seenCell = element("td");
    const seen = element("time", { class: `seen ${freshness(device.lastSeen)}`, datetime: device.lastSeen ?? "", title: dateTime(device.lastSeen) }, relativeTime(device.lastSeen));
    seenCell.append(seen);
    const battery = device.readings.find((r) => r.name === "batteryLevel");
    row.append(nameCell, valuesCell, seenCell, element("td", {}, battery ? battery.text : "–"), element("td", {}, device.state ?? ""));
    row.addEventListener("click", () => select(device.id));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(device.id);
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
        next?.focus();
      }
    });
    rows.push(row);
  }
  body.replaceChildren(...rows);
  if (focused) body.querySelector(`tr[data-device-id="${CSS.escape(focused)}"]`)?.focus({ preventScroll: true });
  $("device-count").textContent = state.loaded ? `(${state.devices.length})` : "";
  $("empty").hidden = !state.loaded || state.devices.length > 0;
  $("device-table").hidden = state.loaded && state.devices.length === 0;
  for (const header of document.querySelectorAll("th[data-sort-key]")) {
    const active = header.dataset.sortKey === state.sort.key;
    header.setAttribute("aria-sort", active ? (state.sort.dir === "asc" ? "ascending" : "descending") : "none");
  }
}

function refreshAges() {
  for (const node of document.querySelectorAll("time.seen")) {
    const iso = node.getAttribute("datetime");
    const text = relativeTime(iso);
    if (node.textContent !== text) node.textContent = text;
    node.className = `seen ${freshness(iso)}`;
  }
}

function sortBy(key) {
  if (state.sort.key === key) {
    state.sort.dir = state.sort.dir === "asc" ? "desc" : "asc";
  } else {
    state.sort = { key, dir: key === "lastSeen" ? "desc" : "asc" };
  }
  renderList();
}

// Detail and chart ---------------------------------------------------------------------------

function seriesOf(device) {
  return allReadings(device)
    .filter((entry) => entry.reading.numeric)
    .map((entry) => ({
      key: JSON.stringify([entry.entityId, entry.reading.name]),
      entityId: entry.entityId,
      type: entry.type,
      attr: entry.reading.name,
      label: `${entry.type === "Device" ? "Device" : entry.type} · ${entry.reading.name}${entry.reading.unit ? ` (${entry.reading.unit})` : ""}`,
      unit: entry.reading.unit ?? "",
    }));
}

function renderDetail() {
  const device = state.devices.find((d) => d.id === state.selected);
  const pane = $("detail");
  if (!device) {
    pane.hidden = true;
    return null;
  }
  pane.hidden = false;
  $("detail-heading").textContent = device.name;
  const facts = [
    ["Device", device.id],
    ["DevEUI", device.devEui ?? "–"],
    ["State", device.state ?? "–"],
    ["Last seen", device.lastSeen ? `${relativeTime(device.lastSeen)} (${dateTime(device.lastSeen)})` : "never"],
  ];
  for (const reading of device.readings) facts.push([reading.name, reading.text]);
  for (const observation of device.observations) facts.push([observation.type, observation.id]);
  $("detail-facts").replaceChildren(...facts.flatMap(([term, value]) => [element("dt", {}, term), element("dd", {}, value)]));

  const series = seriesOf(device);
  const select = $("attr-select");
  const keys = series.map((s) => s.key).join("\n");
  if (select.dataset.keys !== keys) {
    select.replaceChildren(...series.map((s) => element("option", { value: s.key }, s.label)));
    select.dataset.keys = keys;
  }
  if (!series.some((s) => s.key === state.series)) state.series = series[0]?.key ?? null;
  select.disabled = series.length === 0;
  if (state.series) select.value = state.series;
  return series.find((s) => s.key === state.series) ?? null;
}

async function loadHistory(series) {
  const chart = $("chart");
  const caption = $("chart-caption");
  const token = ++state.historyToken;
  if (!series) {
    chart.dataset.drawn = "";
    drawChart(chart, []);
    caption.textContent = "This device has no numeric values to chart yet.";
    return;
  }
  const lastN = state.config.historyLastN;
  const url =
    `/api/entities/${encodeURIComponent(series.entityId)}/history` +
    `?attr=${encodeURIComponent(series.attr)}&type=${encodeURIComponent(series.type)}&lastN=${lastN}`;
  try {
    const history = await getJson(url);
    if (token !== state.historyToken) return;
    const drawn = JSON.stringify([series.key, history.points, chart.clientWidth]);
    if (chart.dataset.drawn === drawn) return;
    chart.dataset.drawn = drawn;
    drawChart(chart, history.points, { unit: history.unit ?? series.unit, name: series.attr });
    caption.textContent = `${series.attr} of ${series.entityId}: the last ${history.points.length} recorded values`;
  } catch (error) {
    if (token !== state.historyToken) return;
    chart.dataset.drawn = "";
    drawChart(chart, []);
    caption.textContent = `No history: ${error.message}`;
  }
}

// Selection ----------------------------------------------------------------------------------

function select(deviceId) {
  state.selected = deviceId;
  renderList();
  map.select(deviceId);
  const series = renderDetail();
  loadHistory(series);
}

function closeDetail() {
  state.selected = null;
  state.series = null;
  renderList();
  map.select(null, { openPopup: false });
  map.closePopup();
  renderDetail();
}

// Refresh ------------------------------------------------------------------------------------

function showProblems(lines) {
  const box = $("problems");
  const text = lines.join("\n");
  if (box.dataset.text === text) return;
  box.dataset.text = text;
  box.replaceChildren(...lines.map((line) => element("p", {}, line)));
  box.hidden = lines.length === 0;
}

async function refresh() {
  const status = $("status");
  try {
    const data = await getJson("/api/devices");
    const signature = JSON.stringify(data.devices);
    const changed = !state.loaded || signature !== state.signature;
    state.devices = data.devices;
    state.signature = signature;
    state.loaded = true;
    status.classList.remove("error");
    const time = new Date().toLocaleTimeString();
    status.textContent = `${data.devices.length} device${data.devices.length === 1 ? "" : "s"} · updated ${time}`;
    showProblems(data.problems);
    if (changed) {
      renderList();
      map.update(state.devices, state.selected);
    } else {
      // the same data: only the ages move on ("3 min ago")
      refreshAges();
      map.refreshAges();
    }
    if (state.selected) {
      const series = renderDetail();
      await loadHistory(series);
    }
  } catch (error) {
    status.classList.add("error");
    status.textContent = "Not updated";
    showProblems([`Could not read the devices: ${error.message}`]);
  } finally {
    setTimeout(refresh, state.config.refreshSeconds * 1000);
  }
}

async function start() {
  try {
    state.config = await getJson("/api/config");
  } catch (error) {
    $("status").textContent = "Not loaded";
    showProblems([`Could not read the page's configuration: ${error.message}`]);
    return;
  }
  document.title = state.config.title;
  $("title").textContent = state.config.title;
  $("attribution").textContent = state.config.tileAttribution ?? "";
  map = new DeviceMap({
    container: $("map"),
    svg: $("map-svg"),
    tiles: $("map-tiles"),
    grid: $("map-grid"),
    markers: $("map-markers"),
    emptyNote: $("map-empty"),
    popup: { root: $("popup"), name: $("popup-name"), readings: $("popup-readings"), seen: $("popup-seen"), close: $("popup-close") },
    tileUrl: state.config.tileUrl,
    maxZoom: state.config.tileMaxZoom,
    onSelect: select,
    describe,
    readingItems: (device) => allReadings(device).map(readingItem),
  });
  $("zoom-in").addEventListener("click", () => map.zoomBy(1));
  $("zoom-out").addEventListener("click", () => map.zoomBy(-1));
  $("zoom-fit").addEventListener("click", () => map.fit());
  for (const button of document.querySelectorAll("button[data-sort]")) {
    button.addEventListener("click", () => sortBy(button.dataset.sort));
  }
  $("attr-select").addEventListener("change", (event) => {
    state.series = event.target.value;
    const device = state.devices.find((d) => d.id === state.selected);
    if (device) loadHistory(seriesOf(device).find((s) => s.key === state.series) ?? null);
  });
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.selected) closeDetail();
  });
  map.fit();
  refresh();
}

start();
