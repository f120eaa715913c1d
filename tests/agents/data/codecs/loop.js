// Loops forever when the first byte is 0xFF; decodes a counter otherwise.
function decodeUplink(input) {
  if (input.bytes[0] === 0xFF) {
    var n = 0;
    while (true) {
      n++;
    }
  }
  return { data: { counter: input.bytes[0] } };
}
