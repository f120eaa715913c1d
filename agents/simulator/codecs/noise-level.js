// Payload formatter of the simulated sound level meters (profile noise-level), for The Things
// Stack or ChirpStack: fPort 2, LAeq, LAmax, LAS as unsigned 16-bit big-endian dB(A) x 10.
function decodeUplink(input) {
  var b = input.bytes;
  if (b.length !== 6) {
    return { errors: ["expected 6 bytes (LAeq, LAmax, LAS), got " + b.length] };
  }
  return {
    data: {
      LAeq: ((b[0] << 8) | b[1]) / 10,
      LAmax: ((b[2] << 8) | b[3]) / 10,
      LAS: ((b[4] << 8) | b[5]) / 10
    }
  };
}
