// Keeps a growing global cache: a codec that leaks until its context runs out of memory.
var cache = [];
function decodeUplink(input) {
  for (var i = 0; i < 20; i++) {
    cache.push(new Array(10000).fill(input.bytes[0]));
  }
  return { data: { calls: cache.length / 20 } };
}
