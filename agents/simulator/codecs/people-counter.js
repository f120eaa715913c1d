// Payload formatter of the simulated pedestrian counters (profile people-counter), for The
// Things Stack or ChirpStack: fPort 2, people counted in the counting direction (u16) and
// against it (u16), big-endian; peopleCount is their sum.
function decodeUplink(input) {
  var b = input.bytes;
  if (b.length !== 4) {
    return { errors: ["expected 4 bytes (in, out), got " + b.length] };
  }
  var towards = (b[0] << 8) | b[1];
  var away = (b[2] << 8) | b[3];
  return { data: { peopleCount: towards + away, "in": towards, out: away } };
}
