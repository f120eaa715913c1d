// A valve controller: uplink = [open 0/1, battery %]; downlink = [command, value hi, value lo]
function decodeUplink(input) {
  return { data: { open: input.bytes[0] === 1, battery: input.bytes[1] } };
}

function encodeDownlink(input) {
  var data = input.data;
  if (data.setReportingInterval !== undefined) {
    var seconds = data.setReportingInterval;
    if (typeof seconds !== "number" || seconds < 60 || seconds > 65535) {
      return { errors: ["setReportingInterval must be 60..65535 seconds"] };
    }
    return { bytes: [0x01, (seconds >> 8) & 0xff, seconds & 0xff], fPort: 20 };
  }
  if (data.valve !== undefined) {
    return { bytes: [0x02, data.valve === "open" ? 1 : 0], fPort: 21, warnings: [] };
  }
  return { errors: ["unknown command"] };
}
