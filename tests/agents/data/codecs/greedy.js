// fPort 9 allocates without end; fPort 8 recurses without end; other ports decode one byte.
function grow() {
  var all = [];
  while (true) {
    all.push(new Array(10000).fill(7));
  }
}
function deeper(n) {
  return deeper(n + 1) + 1;
}
function decodeUplink(input) {
  if (input.fPort === 9) {
    grow();
  }
  if (input.fPort === 8) {
    deeper(0);
  }
  return { data: { value: input.bytes[0] } };
}
