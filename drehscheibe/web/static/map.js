// The device map: an SVG with the devices' positions in Web Mercator, optional raster tiles
// (a {z}/{x}/{y} URL template from the configuration) and a coordinate grid without them.
// Drag to pan, wheel or the buttons to zoom; markers are buttons (focus, Enter, Space).

import { dateTime, freshness, relativeTime } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const TILE = 256;
const MAX_LAT = 85.05112878;
const GRID_STEPS = [10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005];

/** Longitude and latitude (degrees) to Web Mercator x, y in [0, 1]. */
export function project(lon, lat) {
  const clamped = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat));
  const s = Math.sin((clamped * Math.PI) / 180);
  return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
}

/** Web Mercator x, y in [0, 1] back to longitude and latitude. */
export function unproject(x, y) {
  const lat = (360 / Math.PI) * Math.atan(Math.exp((0.5 - y) * 2 * Math.PI)) - 90;
  return [x * 360 - 180, lat];
}

function svgElement(name, attributes = {}) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function degrees(value, step, positive, negative) {
  const decimals = Math.max(0, Math.ceil(-Math.log10(step)));
  return `${Math.abs(value).toFixed(decimals)}°${value >= 0 ? positive : negative}`;
}

export class DeviceMap {
  /**
   * @param {object} options
   *   container: the positioned element around the SVG; svg, tiles, grid, markers: SVG parts;
   *   popup: { root, name, readings, seen, close }; tileUrl, maxZoom: the map configuration;
   *   onSelect(deviceId): called when a marker is chosen; describe(device): marker label text.
   */
  constructor(options) {
    Object.assign(this, options);
    this.maxZoom = Math.min(options.maxZoom ?? 19, 22);
    this.devices = [];
    this.selected = null;
    this.popupOpen = false;
    this.view = null;
    this.tileImages = new Map();
    this._bind();
  }

  _bind() {
    const svg = this.svg;
    let drag = null;
    svg.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || event.target.closest(".marker") || !this.view) return;
      drag = { x: event.clientX, y: event.clientY, center: [...this.view.center] };
      svg.setPointerCapture(event.pointerId);
      this.container.classList.add("dragging");
    });
    svg.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const scale = TILE * 2 ** this.view.zoom;
      this.view.center = [
        drag.center[0] - (event.clientX - drag.x) / scale,
        drag.center[1] - (event.clientY - drag.y) / scale,
      ];
      this.render();
    });
    const end = () => {
      drag = null;
      this.container.classList.remove("dragging");
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    svg.addEventListener(
      "wheel",
      (event) => {
        if (!this.view) return;
        event.preventDefault();
        const box = svg.getBoundingClientRect();
        this.zoomBy(event.deltaY < 0 ? 0.5 : -0.5, [event.clientX - box.left, event.clientY - box.top]);
      },
      { passive: false },
    );
    this.popup.close.addEventListener("click", () => this.closePopup());
    window.addEventListener("resize", () => this.render());
  }

  _size() {
    const box = this.svg.getBoundingClientRect();
    return [Math.max(box.width, 1), Math.max(box.height, 1)];
  }

  _located() {
    return this.devices.filter((device) => Array.isArray(device.location));
  }

  /** Frame every device with a location (a single one at street level). */
  fit() {
    const points = this._located().map((device) => project(device.location[0], device.location[1]));
    if (points.length === 0) {
      this.view = this.view ?? { center: project(6.7735, 51.2277), zoom: 11 };
      this.render();
      return;
    }
    const [width, height] = this._size();
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const pad = 48;
    const spanX = Math.max(maxX - minX, 1e-9);
    const spanY = Math.max(maxY - minY, 1e-9);
    const fitZoom = Math.log2(Math.min((width - 2 * pad) / (spanX * TILE), (height - 2 * pad) / (spanY * TILE)));
    const zoom = points.length === 1 ? 15 : Math.floor(fitZoom * 2) / 2;
    this.view = {
      center: [(minX + maxX) / 2, (minY + maxY) / 2],
      zoom: Math.max(1, Math.min(this.maxZoom, zoom, 17)),
    };
    this.render();
  }

  /** Zoom by `delta` levels, keeping the point `anchor` (pixels in the map) in place. */
  zoomBy(delta, anchor) {
    if (!this.view) return;
    const [width, height] = this._size();
    const [ax, ay] = anchor ?? [width / 2, height / 2];
    const before = TILE * 2 ** this.view.zoom;
    const zoom = Math.max(1, Math.min(this.maxZoom, this.view.zoom + delta));
    const after = TILE * 2 ** zoom;
    const worldX = this.view.center[0] + (ax - width / 2) / before;
    const worldY = this.view.center[1] + (ay - height / 2) / before;
    this.view = {
      center: [worldX - (ax - width / 2) / after, worldY - (ay - height / 2) / after],
      zoom,
    };
    this.render();
  }

  /** New data: redraw the markers; frame them the first time there are any. */
  update(devices, selected) {
    const hadLocated = this._located().length > 0;
    this.devices = devices;
    this.selected = selected;
    if (!this.view || (!hadLocated && this._located().length > 0)) {
      this.fit();
    } else {
      this.render();
    }
  }

  /** The same data, later: update the ages in the popup and the markers' labels. */
  refreshAges() {
    for (const marker of this.markers.querySelectorAll(".marker")) {
      const device = this.devices.find((d) => d.id === marker.dataset.deviceId);
      if (!device) continue;
      const label = this.describe(device);
      if (marker.getAttribute("aria-label") !== label) {
        marker.setAttribute("aria-label", label);
        marker.querySelector("title").textContent = label;
      }
      marker.classList.remove("fresh", "stale", "silent");
      marker.classList.add(freshness(device.lastSeen));
    }
    if (!this.popup.root.hidden) this._renderPopup();
  }

  select(deviceId, { openPopup = true } = {}) {
    this.selected = deviceId;
    if (openPopup) this.popupOpen = true;
    this.render();
  }

  closePopup() {
    this.popupOpen = false;
    this.render();
  }

  _screen(lon, lat) {
    const [width, height] = this._size();
    const scale = TILE * 2 ** this.view.zoom;
    const [x, y] = project(lon, lat);
    return [(x - this.view.center[0]) * scale + width / 2, (y - this.view.center[1]) * scale + height / 2];
  }

  render() {
    if (!this.view) return;
    const [width, height] = this._size();
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    if (this.tileUrl) {
      this._renderTiles(width, height);
    } else {
      this._renderGrid(width, height);
    }
    this._renderMarkers();
    this._renderPopup();
  }

  _renderTiles(width, height) {
    const z = Math.max(0, Math.min(this.maxZoom, Math.round(this.view.zoom)));
    const n = 2 ** z;
    const scale = 2 ** (this.view.zoom - z);
    const size = TILE * scale;
    const cx = this.view.center[0] * n * TILE;
    const cy = this.view.center[1] * n * TILE;
    const x0 = Math.floor((cx - width / 2 / scale) / TILE);
    const x1 = Math.floor((cx + width / 2 / scale) / TILE);
    const y0 = Math.max(0, Math.floor((cy - height / 2 / scale) / TILE));
    const y1 = Math.min(n - 1, Math.floor((cy + height / 2 / scale) / TILE));
    const keep = new Set();
    for (let tx = x0; tx <= x1; tx++) {
      for (let ty = y0; ty <= y1; ty++) {
        const wrapped = ((tx % n) + n) % n;
        const key = `${z}/${tx}/${ty}`;
        keep.add(key);
        let image = this.tileImages.get(key);
        if (!image) {
          const url = this.tileUrl.replace("{z}", z).replace("{x}", wrapped).replace("{y}", ty);
          image = svgElement("image", { href: url, class: "tile" });
          image.setAttribute("preserveAspectRatio", "none");
          this.tiles.appendChild(image);
          this.tileImages.set(key, image);
        }
        image.setAttribute("x", (tx * TILE - cx) * scale + width / 2);
        image.setAttribute("y", (ty * TILE - cy) * scale + height / 2);
        image.setAttribute("width", size + 0.5);
        image.setAttribute("height", size + 0.5);
      }
    }
    for (const [key, image] of this.tileImages) {
      if (!keep.has(key)) {
        image.remove();
        this.tileImages.delete(key);
      }
    }
  }

  _renderGrid(width, height) {
    this.grid.replaceChildren();
    const perDegree = (TILE * 2 ** this.view.zoom) / 360;
    const step = GRID_STEPS.find((candidate) => candidate * perDegree < 140) ?? GRID_STEPS.at(-1);
    const [west, north] = unproject(
      this.view.center[0] - width / 2 / (TILE * 2 ** this.view.zoom),
      this.view.center[1] - height / 2 / (TILE * 2 ** this.view.zoom),
    );
    const [east, south] = unproject(
      this.view.center[0] + width / 2 / (TILE * 2 ** this.view.zoom),
      this.view.center[1] + height / 2 / (TILE * 2 ** this.view.zoom),
    );
    for (let lon = Math.ceil(west / step) * step; lon <= east; lon += step) {
      const [x] = this._screen(lon, 0);
      this.grid.appendChild(svgElement("line", { x1: x, y1: 0, x2: x, y2: height, class: "grid-line" }));
      const label = svgElement("text", { x: x + 3, y: height - 4, class: "grid-label" });
      label.textContent = degrees(lon, step, "E", "W");
      this.grid.appendChild(label);
    }
    for (let lat = Math.ceil(Math.max(south, -MAX_LAT) / step) * step; lat <= Math.min(north, MAX_LAT); lat += step) {
      const [, y] = this._screen(0, lat);
      this.grid.appendChild(svgElement("line", { x1: 0, y1: y, x2: width, y2: y, class: "grid-line" }));
      const label = svgElement("text", { x: 3, y: y - 3, class: "grid-label" });
      label.textContent = degrees(lat, step, "N", "S");
      this.grid.appendChild(label);
    }
  }

  _renderMarkers() {
    const focused = document.activeElement?.closest?.(".marker")?.dataset.deviceId;
    this.markers.replaceChildren();
    const located = this._located();
    const labelled = located.length <= 25;
    // the selected marker last, so that it is drawn on top
    const ordered = [...located].sort((a, b) => (a.id === this.selected) - (b.id === this.selected));
    for (const device of ordered) {
      const [x, y] = this._screen(device.location[0], device.location[1]);
      const classes = ["marker", freshness(device.lastSeen)];
      if (device.id === this.selected) classes.push("selected");
      const marker = svgElement("g", {
        class: classes.join(" "),
        transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
        tabindex: 0,
        role: "button",
        "data-device-id": device.id,
        "aria-label": this.describe(device),
      });
      if (device.id === this.selected) marker.setAttribute("aria-pressed", "true");
      marker.appendChild(svgElement("circle", { r: 8 }));
      const title = svgElement("title");
      title.textContent = this.describe(device);
      marker.appendChild(title);
      if (labelled) {
        const label = svgElement("text", { x: 11, y: 4, class: "marker-label" });
        label.textContent = device.name;
        marker.appendChild(label);
      }
      const choose = () => this.onSelect(device.id);
      marker.addEventListener("click", choose);
      marker.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          choose();
        }
      });
      this.markers.appendChild(marker);
      if (device.id === focused) marker.focus({ preventScroll: true });
    }
    this.emptyNote.hidden = located.length > 0 || this.devices.length === 0;
  }

  _renderPopup() {
    const device = this.devices.find((d) => d.id === this.selected);
    const root = this.popup.root;
    if (!this.popupOpen || !device || !Array.isArray(device.location)) {
      root.hidden = true;
      return;
    }
    const [x, y] = this._screen(device.location[0], device.location[1]);
    const [width, height] = this._size();
    if (x < 0 || y < 0 || x > width || y > height) {
      root.hidden = true;
      return;
    }
    this.popup.name.textContent = device.name;
    this.popup.readings.replaceChildren(...this.readingItems(device));
    this.popup.seen.textContent = relativeTime(device.lastSeen);
    this.popup.seen.setAttribute("datetime", device.lastSeen ?? "");
    this.popup.seen.title = dateTime(device.lastSeen);
    root.style.left = `${Math.max(100, Math.min(width - 100, x))}px`;
    root.style.top = `${y}px`;
    root.hidden = false;
    root.classList.toggle("below", y < root.offsetHeight + 24);
  }
}
