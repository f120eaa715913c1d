// Times as people read them next to a device: "42 s ago", and how fresh that is.

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Milliseconds since the epoch of an ISO 8601 time, or null. */
export function instant(iso) {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"; "never" without a time. */
export function relativeTime(iso, now = Date.now()) {
  const ms = instant(iso);
  if (ms === null) return "never";
  const age = now - ms;
  if (age < 5 * 1000) return "just now";
  if (age < MINUTE) return `${Math.round(age / 1000)} s ago`;
  if (age < HOUR) return `${Math.round(age / MINUTE)} min ago`;
  if (age < DAY) return `${Math.round(age / HOUR)} h ago`;
  return `${Math.round(age / DAY)} d ago`;
}

/** "fresh" (heard within 30 min), "stale" (within a day) or "silent". */
export function freshness(iso, now = Date.now()) {
  const ms = instant(iso);
  if (ms === null) return "silent";
  const age = now - ms;
  if (age <= 30 * MINUTE) return "fresh";
  if (age <= DAY) return "stale";
  return "silent";
}

/** The time in the reader's locale, with the date. */
export function dateTime(iso) {
  const ms = instant(iso);
  return ms === null ? "" : new Date(ms).toLocaleString();
}

/** Every reading of a device: its own (battery, signal) after its observations' values. */
export function allReadings(device) {
  const found = [];
  for (const observation of device.observations) {
    for (const reading of observation.readings) {
      found.push({ entityId: observation.id, type: observation.type, reading });
    }
  }
  for (const reading of device.readings) {
    found.push({ entityId: device.id, type: "Device", reading });
  }
  return found;
}
