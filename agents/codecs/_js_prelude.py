"""JavaScript evaluated in every codec context before and after the codec's own source.

`BUFFER_SHIM` is a small subset of Node's `Buffer` for codecs written for ChirpStack, which runs
them with Node's `Buffer` available: `Buffer.from(array | hex | base64 | utf8 string)`,
`Buffer.alloc`, `Buffer.concat`, `Buffer.isBuffer`, the `read[U]Int{8,16,32}{BE,LE}`,
`readFloat{BE,LE}`, `readDouble{BE,LE}` readers, `slice`/`subarray` and
`toString("hex" | "base64" | "utf8" | "ascii" | "latin1")`. It is a `Uint8Array` subclass, so
indexing and `length` work as in Node.

`RUNNER` defines the one function Python calls, `__drehscheibe_run(entry, inputJson, normalize)`,
which calls the codec's entry point and returns the result as a JSON string.
"""

from __future__ import annotations

__all__ = ["BUFFER_SHIM", "RUNNER"]

BUFFER_SHIM = r"""
(function (g) {
  if (typeof g.Buffer !== "undefined") { return; }
  var B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  function fromHex(s) {
    var out = [];
    for (var i = 0; i + 1 < s.length; i += 2) {
      var byte = parseInt(s.substr(i, 2), 16);
      if (isNaN(byte)) { break; }
      out.push(byte);
    }
    return out;
  }
  function fromBase64(s) {
    s = s.replace(/[^A-Za-z0-9+/\-_]/g, "").replace(/-/g, "+").replace(/_/g, "/");
    var out = [], bits = 0, acc = 0;
    for (var i = 0; i < s.length; i++) {
      acc = (acc << 6) | B64.indexOf(s.charAt(i));
      bits += 6;
      if (bits >= 8) { bits -= 8; out.push((acc >> bits) & 0xff); }
    }
    return out;
  }
  function fromUtf8(s) {
    var out = [], bytes = unescape(encodeURIComponent(s));
    for (var i = 0; i < bytes.length; i++) { out.push(bytes.charCodeAt(i)); }
    return out;
  }
  class Buffer extends Uint8Array {
    static from(value, encoding) {
      if (typeof value === "string") {
        var enc = (encoding || "utf8").toLowerCase();
        if (enc === "hex") { return new Buffer(fromHex(value)); }
        if (enc === "base64" || enc === "base64url") { return new Buffer(fromBase64(value)); }
        if (enc === "ascii" || enc === "latin1" || enc === "binary") {
          var raw = [];
          for (var i = 0; i < value.length; i++) { raw.push(value.charCodeAt(i) & 0xff); }
          return new Buffer(raw);
        }
        return new Buffer(fromUtf8(value));
      }
      if (value instanceof ArrayBuffer) { return new Buffer(new Uint8Array(value)); }
      return new Buffer(Array.prototype.slice.call(value));
    }
    static alloc(size, fill) {
      var b = new Buffer(size);
      if (fill !== undefined) { b.fill(fill); }
      return b;
    }
    static isBuffer(value) { return value instanceof Buffer; }
    static concat(list) {
      var total = 0, i;
      for (i = 0; i < list.length; i++) { total += list[i].length; }
      var out = new Buffer(total), at = 0;
      for (i = 0; i < list.length; i++) { out.set(list[i], at); at += list[i].length; }
      return out;
    }
    view() { return new DataView(this.buffer, this.byteOffset, this.byteLength); }
    slice(start, end) { return this.subarray(start, end); }
    readUInt8(o) { return this.view().getUint8(o || 0); }
    readInt8(o) { return this.view().getInt8(o || 0); }
    readUInt16BE(o) { return this.view().getUint16(o || 0, false); }
    readUInt16LE(o) { return this.view().getUint16(o || 0, true); }
    readInt16BE(o) { return this.view().getInt16(o || 0, false); }
    readInt16LE(o) { return this.view().getInt16(o || 0, true); }
    readUInt32BE(o) { return this.view().getUint32(o || 0, false); }
    readUInt32LE(o) { return this.view().getUint32(o || 0, true); }
    readInt32BE(o) { return this.view().getInt32(o || 0, false); }
    readInt32LE(o) { return this.view().getInt32(o || 0, true); }
    readFloatBE(o) { return this.view().getFloat32(o || 0, false); }
    readFloatLE(o) { return this.view().getFloat32(o || 0, true); }
    readDoubleBE(o) { return this.view().getFloat64(o || 0, false); }
    readDoubleLE(o) { return this.view().getFloat64(o || 0, true); }
    toString(encoding) {
      var enc = (encoding || "utf8").toLowerCase(), out = "", i;
      if (enc === "hex") {
        for (i = 0; i < this.length; i++) {
          out += (this[i] < 16 ? "0" : "") + this[i].toString(16);
        }
        return out;
      }
      if (enc === "base64") {
        for (i = 0; i < this.length; i += 3) {
          var n = (this[i] << 16) | ((this[i + 1] || 0) << 8) | (this[i + 2] || 0);
          out += B64.charAt((n >> 18) & 63) + B64.charAt((n >> 12) & 63);
          out += i + 1 < this.length ? B64.charAt((n >> 6) & 63) : "=";
          out += i + 2 < this.length ? B64.charAt(n & 63) : "=";
        }
        return out;
      }
      for (i = 0; i < this.length; i++) { out += String.fromCharCode(this[i]); }
      if (enc === "ascii" || enc === "latin1" || enc === "binary") { return out; }
      try { return decodeURIComponent(escape(out)); } catch (e) { return out; }
    }
    toJSON() { return { type: "Buffer", data: Array.prototype.slice.call(this) }; }
  }
  var aliases = ["UInt8", "UInt16BE", "UInt16LE", "UInt32BE", "UInt32LE"];
  for (var k = 0; k < aliases.length; k++) {
    Buffer.prototype["readUint" + aliases[k].substr(4)] = Buffer.prototype["read" + aliases[k]];
  }
  g.Buffer = Buffer;
})(globalThis);
"""

RUNNER = r"""
function __drehscheibe_run(entry, inputJson, normalize) {
  var input = JSON.parse(inputJson);
  var recvTime = input.recvTime === undefined ? new Date() : new Date(input.recvTime);
  var variables = input.variables || {};
  var result;
  if (entry === "decodeUplink") {
    result = decodeUplink({
      bytes: input.bytes, fPort: input.fPort, recvTime: recvTime, variables: variables
    });
  } else if (entry === "Decoder") {
    result = { data: Decoder(input.bytes, input.fPort) };
  } else {
    result = { data: Decode(input.fPort, input.bytes, variables) };
  }
  var out = { decoded: result === undefined ? null : result };
  if (normalize && result && typeof result === "object" && result.data !== undefined
      && !(result.errors && result.errors.length)) {
    var normalized = normalizeUplink({ data: result.data });
    out.normalized = normalized === undefined ? null : normalized;
  }
  return JSON.stringify(out);
}
"""
