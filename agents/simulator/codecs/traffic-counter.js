// Payload formatter of the simulated vehicle counters (profile traffic-counter), for The Things
// Stack or ChirpStack: fPort 2, vehicle count (u16), average speed km/h x 10 (u16) and lane
// occupancy in percent (u8), big-endian.
function decodeUplink(input) {
  var b = input.bytes;
  if (b.length !== 5) {
    return { errors: ["expected 5 bytes (count, speed, occupancy), got " + b.length] };
  }
  return {
    data: {
      vehicleCount: (b[0] << 8) | b[1],
      averageSpeed: ((b[2] << 8) | b[3]) / 10,
      occupancy: b[4]
    }
  };
}
