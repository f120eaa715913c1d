// Temperature and humidity sensor, Device Repository style.
// fPort 1: int16 big-endian temperature in 0.1 °C, uint8 humidity in 0.5 %RH.
// fPort 2: uint16 big-endian battery voltage in mV.
function decodeUplink(input) {
  var bytes = input.bytes;
  if (input.fPort === 1) {
    if (bytes.length < 3) {
      return { errors: ["fPort 1 needs 3 bytes, got " + bytes.length] };
    }
    var raw = (bytes[0] << 8) | bytes[1];
    if (raw & 0x8000) {
      raw -= 0x10000;
    }
    var warnings = [];
    var humidity = bytes[2] / 2;
    if (humidity > 100) {
      warnings.push("humidity above 100 %");
    }
    return {
      data: { temperature: raw / 10, humidity: humidity },
      warnings: warnings
    };
  }
  if (input.fPort === 2) {
    return { data: { battery: { voltage: ((bytes[0] << 8) | bytes[1]) / 1000 } } };
  }
  return { errors: ["unknown fPort " + input.fPort] };
}

function normalizeUplink(input) {
  if (input.data.temperature === undefined) {
    return { errors: ["nothing to normalize"] };
  }
  return {
    data: {
      air: {
        temperature: input.data.temperature,
        relativeHumidity: input.data.humidity
      }
    }
  };
}
