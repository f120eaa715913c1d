// Two readings per frame: normalizeUplink returns one measurement object per reading.
function decodeUplink(input) {
  return { data: { first: input.bytes[0] / 10, second: input.bytes[1] / 10 } };
}
function normalizeUplink(input) {
  return {
    data: [
      { air: { temperature: input.data.first } },
      { air: { temperature: input.data.second } }
    ],
    warnings: ["two readings"]
  };
}
