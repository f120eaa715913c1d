// ChirpStack v3 codec using Node's Buffer.
function Decode(fPort, bytes, variables) {
  var buf = Buffer.from(bytes);
  return {
    temperature: buf.readInt16BE(0) / 100,
    pressure: buf.readUInt32LE(2) / 100,
    hex: buf.toString("hex"),
    unit: variables.unit || "celsius"
  };
}
