// The Things Network v2 payload function.
function Decoder(bytes, port) {
  return {
    distance: (bytes[0] << 8) | bytes[1],
    port: port,
    open: bytes[2] === 1
  };
}
