// Throws on frame versions it does not know (first byte other than 1).
function decodeUplink(input) {
  if (input.bytes[0] !== 1) {
    throw new Error("unsupported frame version " + input.bytes[0]);
  }
  return { data: { level: input.bytes[1] } };
}
