// ChirpStack v4 codec using Node's Buffer and device variables.
function decodeUplink(input) {
  const buf = Buffer.from(input.bytes);
  const tail = buf.slice(2);
  return {
    data: {
      level: buf.readUInt16LE(0),
      ratio: tail.readInt8(0) / 4,
      base64: buf.toString("base64"),
      site: input.variables.site,
      seenAt: input.recvTime.toISOString()
    }
  };
}
