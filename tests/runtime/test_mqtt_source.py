"""The MQTT source against a real Mosquitto: subscriptions after (re)connect, QoS 1 with a
persistent session, acknowledgement only when the pipeline says so, shared subscriptions."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from agents.runtime._config import SourceConfig
from agents.runtime._messages import ACCEPTED, Message, MessageQueue, SourceInfo
from agents.runtime._mqtt import READ_SIZE, BufferedClient, MqttSource, default_topics
from tests.conftest import Mosquitto, free_port

pytestmark = pytest.mark.mqtt


def source_config(port: int, **mqtt_options: Any) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "cs",
            "network_server": "chirpstack-v4",
            "transport": "mqtt",
            "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_max": 1, **mqtt_options},
        }
    )


def make_source(
    config: SourceConfig, queue: MessageQueue, client_id: str = "agent-cs"
) -> MqttSource:
    info = SourceInfo(name=config.name, kind=config.network_server, transport="mqtt")
    return MqttSource(config, queue, info=info, client_id=client_id, overflow_wait=0.2)


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def take_all(queue: MessageQueue, n: int, timeout: float = 10.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += queue.take(n - len(got), timeout=0.2)
    return got


def test_default_topics_per_network_server() -> None:
    tts = SourceConfig.model_validate(
        {
            "name": "t",
            "network_server": "tts",
            "transport": "mqtt",
            "mqtt": {"host": "h", "application": "app", "ns_tenant": "ttn"},
        }
    )
    assert default_topics(tts) == [
        "v3/app@ttn/devices/+/up",
        "v3/app@ttn/devices/+/join",
        "v3/app@ttn/devices/+/location/solved",
    ]
    cs = source_config(1883, events=["up", "status"])
    assert default_topics(cs) == [
        "application/+/device/+/event/up",
        "application/+/device/+/event/status",
    ]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_unacknowledged_uplinks_are_redelivered_after_a_restart(
    mosquitto: Mosquitto, protocol: str
) -> None:
    queue = MessageQueue(100)
    config = source_config(mosquitto.port, protocol=protocol)
    source = make_source(config, queue)
    source.start()
    wait_until(lambda: source.ready)
    pub = publisher(mosquitto.port)
    topic = "application/app/device/0004a30b001c0530/event/up"
    for i in range(3):
        pub.publish(topic, f'{{"n": {i}}}'.encode(), qos=1).wait_for_publish(5)
    first = take_all(queue, 3)
    assert [m.payload for m in first] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert all(m.topic == topic and m.source.name == "cs" for m in first)
    # Only the first is acknowledged (durable); the agent then goes away.
    assert first[0].ack is not None
    first[0].ack(ACCEPTED)
    time.sleep(0.2)
    source.stop()
    source = make_source(config, queue)
    source.start()
    again = take_all(queue, 2)
    assert sorted(m.payload for m in again) == [b'{"n": 1}', b'{"n": 2}']
    for message in again:
        assert message.ack is not None
        message.ack(ACCEPTED)
    time.sleep(0.3)
    assert queue.take(10, timeout=0.3) == []
    source.stop()
    pub.loop_stop()
    pub.disconnect()


def test_subscriptions_come_back_after_the_server_restarts(mosquitto: Mosquitto) -> None:
    queue = MessageQueue(100)
    source = make_source(source_config(mosquitto.port, qos=0, persistent_session=False), queue)
    source.start()
    wait_until(lambda: source.connected)
    mosquitto.stop()
    wait_until(lambda: not source.connected)
    assert source.last_error is not None
    assert not source.ready
    mosquitto.start()
    wait_until(lambda: source.ready, timeout=15)
    pub = publisher(mosquitto.port)
    pub.publish("application/a/device/0004a30b001c0530/event/up", b"{}", qos=0)
    assert len(take_all(queue, 1)) == 1
    assert source.counters.connects == 2
    source.stop()
    pub.loop_stop()


def test_shared_subscriptions_split_the_uplinks(mosquitto: Mosquitto) -> None:
    queue_a, queue_b = MessageQueue(100), MessageQueue(100)
    config = source_config(mosquitto.port, shared_group="agents", qos=1)
    a = make_source(config, queue_a, client_id="agent-a")
    b = make_source(config, queue_b, client_id="agent-b")
    assert a.topics[0].startswith("$share/agents/application/")
    a.start()
    b.start()
    wait_until(lambda: a.ready and b.ready)
    pub = publisher(mosquitto.port)
    for i in range(20):
        pub.publish(
            "application/a/device/0004a30b001c0530/event/up", str(i).encode(), qos=1
        ).wait_for_publish(5)
    got: list[Message] = []
    deadline = time.monotonic() + 10
    while len(got) < 20 and time.monotonic() < deadline:
        got += queue_a.take(20, timeout=0.05) + queue_b.take(20, timeout=0.05)
    for message in got:
        assert message.ack is not None
        message.ack(ACCEPTED)
    assert sorted(int(m.payload) for m in got) == list(range(20))
    assert a.counters.received > 0
    assert b.counters.received > 0
    a.stop()
    b.stop()
    pub.loop_stop()


class FakeClient:
    """Records what the source asks of paho; the test drives the callbacks."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.subscribed: list[Any] = []
        self.acked: list[tuple[int, int]] = []
        self.disconnected = False
        self.on_connect: Any = None
        self.on_message: Any = None

    def reconnect_delay_set(self, **kwargs: Any) -> None:
        self.delays = kwargs

    def username_pw_set(self, username: str | None, password: str | None) -> None:
        self.credentials = (username, password)

    def connect_async(self, host: str, port: int, **kwargs: Any) -> None:
        self.address = (host, port, kwargs)

    def loop_start(self) -> None:
        pass

    def loop_stop(self) -> None:
        pass

    def subscribe(self, topics: Any) -> None:
        self.subscribed.append(topics)

    def disconnect(self) -> None:
        self.disconnected = True

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append((mid, qos))


def fake_source(queue: MessageQueue, **mqtt_options: Any) -> tuple[MqttSource, list[FakeClient]]:
    made: list[FakeClient] = []

    def factory(**kwargs: Any) -> FakeClient:
        made.append(FakeClient(**kwargs))
        return made[-1]

    config = source_config(1883, username="u", **mqtt_options)
    info = SourceInfo(name="cs", kind="chirpstack-v4", transport="mqtt")
    source = MqttSource(
        config,
        queue,
        info=info,
        client_id="agent-cs",
        password="pw",
        client_factory=factory,
        overflow_wait=0.05,
    )
    return source, made


def test_client_settings_for_mqtt5_persistent_sessions() -> None:
    source, made = fake_source(MessageQueue(10), protocol="5", session_expiry=600)
    source.start()
    client = made[0]
    assert client.kwargs["callback_api_version"] is CallbackAPIVersion.VERSION2
    assert client.kwargs["manual_ack"] is True
    assert "clean_session" not in client.kwargs
    host, port, connect = client.address
    assert (host, port) == ("127.0.0.1", 1883)
    assert connect["clean_start"] is False
    assert connect["properties"].SessionExpiryInterval == 600
    assert connect["properties"].ReceiveMaximum == 1000
    assert client.credentials == ("u", "pw")


def test_refused_credentials_stop_the_retries_and_show_in_health() -> None:
    source, made = fake_source(MessageQueue(10))
    source.start()
    client = made[0]
    refused = ReasonCode(PacketTypes.CONNACK, identifier=0x86)
    client.on_connect(client, None, mqtt.ConnectFlags(False), refused, None)
    assert client.disconnected
    assert not source.connected
    assert source.last_error is not None
    assert "not authorized" in source.last_error


def test_acks_of_an_earlier_connection_are_not_sent_and_overflow_is_counted() -> None:
    queue = MessageQueue(1)
    source, made = fake_source(queue, qos=1)
    source.start()
    client = made[0]
    ok = ReasonCode(PacketTypes.CONNACK, identifier=0)
    client.on_connect(client, None, mqtt.ConnectFlags(False), ok, None)
    assert client.subscribed == [
        [
            ("application/+/device/+/event/up", 1),
            ("application/+/device/+/event/join", 1),
            ("application/+/device/+/event/location", 1),
        ]
    ]
    msg = mqtt.MQTTMessage(mid=7, topic=b"application/a/device/0004a30b001c0530/event/up")
    msg.payload = b"{}"
    msg.qos = 1
    client.on_message(client, None, msg)
    second = mqtt.MQTTMessage(mid=8, topic=b"application/a/device/0004a30b001c0530/event/up")
    second.qos = 1
    client.on_message(client, None, second)  # the queue holds one: counted, not acked
    assert source.counters.overflow == 1
    [message] = queue.take(5, timeout=0.1)
    client.on_connect(client, None, mqtt.ConnectFlags(True), ok, None)  # a reconnect
    assert message.ack is not None
    message.ack(ACCEPTED)
    assert client.acked == []
    assert source.counters.stale_acks == 1
    client.on_message(client, None, msg)
    [message] = queue.take(5, timeout=0.1)
    assert message.ack is not None
    message.ack(ACCEPTED)
    assert client.acked == [(7, 1)]


def test_a_failing_callback_is_counted_not_raised() -> None:
    source, made = fake_source(MessageQueue(10))
    source.start()
    client = made[0]
    client.on_message(client, None, object())  # not a message at all
    assert source.counters.callback_errors == 1


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made with openssl."""
    ca_key, ca_cert = folder / "ca.key", folder / "ca.crt"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    return ca_cert, cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make certificates")
def test_tls_and_credentials_per_source(tmp_path: Path) -> None:
    ca, cert, key = _tls_files(tmp_path)
    passwords = tmp_path / "passwords"
    passwords.write_text("")
    subprocess.run(
        [
            shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd",
            "-b",
            str(passwords),
            "agent",
            "s3cret",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    # as root Mosquitto would switch to its own user, who cannot read files in tmp_path
    user = "user root\n" if os.geteuid() == 0 else ""
    config.write_text(
        f"{user}listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
        f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\npersistence false\n"
    )
    broker = Mosquitto(port=port, config=config)
    broker.start()
    try:
        queue = MessageQueue(10)
        tls = {"ca_file": str(ca)}
        good = source_config(port, username="agent", tls=tls)
        info = SourceInfo(name="cs", kind="chirpstack-v4", transport="mqtt")
        source = MqttSource(good, queue, info=info, client_id="tls-agent", password="s3cret")
        source.start()
        wait_until(lambda: source.connected)
        source.stop()
        wrong = MqttSource(good, queue, info=info, client_id="tls-agent-2", password="nope")
        wrong.start()
        wait_until(lambda: wrong.last_error is not None and "not authorized" in wrong.last_error)
        assert not wrong.connected
        wrong.stop()
    finally:
        broker.stop()


class CountingClient(BufferedClient):
    """The default client, counting its reads from the socket itself."""

    socket_reads = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._offset >= len(self._buffer):
            CountingClient.socket_reads += 1
        return super()._sock_recv(bufsize)


@pytest.mark.parametrize("qos", [0, 1])
def test_the_buffered_client_hands_over_every_packet_of_a_burst(
    mosquitto: Mosquitto, qos: int
) -> None:
    queue = MessageQueue(2000)
    config = source_config(mosquitto.port, qos=qos, persistent_session=False)
    info = SourceInfo(name=config.name, kind=config.network_server, transport="mqtt")
    CountingClient.socket_reads = 0
    source = MqttSource(
        config, queue, info=info, client_id="agent-burst", client_factory=CountingClient
    )
    source.start()
    wait_until(lambda: source.ready)
    topic = "application/app/device/0004a30b001c0530/event/up"
    # small packets, one across several reads, one larger than a whole read
    payloads = [f'{{"n": {i}, "pad": "{"x" * (i % 300)}"}}'.encode() for i in range(600)]
    payloads[100] = b'{"big": "' + b"y" * (READ_SIZE * 2 + 17) + b'"}'
    payloads[400] = b""
    pub = publisher(mosquitto.port)
    infos = [pub.publish(topic, payload, qos=qos) for payload in payloads]
    for sent in infos:
        sent.wait_for_publish(10)
    got: list[Message] = []
    deadline = time.monotonic() + 20
    while len(got) < len(payloads) and time.monotonic() < deadline:
        batch = queue.take(len(payloads), timeout=0.2)
        for message in batch:  # QoS 1: the server's in-flight window waits for the acks
            if message.ack is not None:
                message.ack(ACCEPTED)
        got += batch
    assert [m.payload for m in got] == payloads
    assert all(m.topic == topic for m in got)
    assert (got[0].ack is not None) is (qos == 1)
    assert CountingClient.socket_reads < len(payloads) / 2
    source.stop()
    pub.loop_stop()
    pub.disconnect()


def test_the_default_client_is_the_buffered_one(mosquitto: Mosquitto) -> None:
    queue = MessageQueue(10)
    source = make_source(source_config(mosquitto.port, qos=0, persistent_session=False), queue)
    source.start()
    wait_until(lambda: source.connected)
    assert type(source._client) is BufferedClient
    source.stop()


def publish_packet(topic: str, payload: bytes) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode() + payload
    size, length = len(body), bytearray()
    while True:
        byte, size = size % 128, size // 128
        length.append(byte | (0x80 if size else 0))
        if not size:
            return b"\x30" + bytes(length) + body


def feed(client: BufferedClient, data: bytes) -> tuple[list[bytes], mqtt.MQTTErrorCode]:
    """Run `client`'s read loop on a socket pair carrying `data`; the payloads it handed over."""
    ours, theirs = socket.socketpair()
    got: list[bytes] = []
    client.on_message = lambda _client, _userdata, message: got.append(message.payload)
    client._sock = theirs  # type: ignore[assignment]
    theirs.setblocking(False)
    ours.sendall(data)
    ours.close()
    rc = mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
    try:
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and client._sock is not None:
            rc = client.loop_read()
    finally:
        theirs.close()
    return got, rc


@pytest.mark.parametrize("read_size", [7, 64, READ_SIZE])
def test_the_buffered_client_reads_packets_whole_or_split(
    monkeypatch: pytest.MonkeyPatch, read_size: int
) -> None:
    monkeypatch.setattr("agents.runtime._mqtt.READ_SIZE", read_size)
    topic = "v3/city/devices/dev-1/up"
    # remaining lengths of one, two and three bytes; reads that end anywhere in a packet
    payloads = [b"", b"x", b"y" * 200, b"z" * 20_000, *(str(n).encode() * n for n in range(40))]
    data = b"".join(publish_packet(topic, payload) for payload in payloads)
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="reader")
    got, rc = feed(client, data)
    assert got == payloads
    assert rc == mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST  # the other end closed


def test_the_buffered_client_refuses_a_malformed_length() -> None:
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="reader")
    good = publish_packet("t/1", b"ok")
    got, rc = feed(client, good + b"\x30\xff\xff\xff\xff\x01" + b"x" * 64)
    assert got == [b"ok"]
    assert rc == mqtt.MQTTErrorCode.MQTT_ERR_PROTOCOL


def test_the_buffered_client_calls_topic_filter_callbacks_as_paho_does() -> None:
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="reader")
    filtered: list[bytes] = []
    client.message_callback_add(
        "v3/+/devices/+/join", lambda _client, _userdata, message: filtered.append(message.payload)
    )
    data = b"".join(
        publish_packet(topic, payload)
        for topic, payload in [
            ("v3/city/devices/d1/up", b"1"),
            ("v3/city/devices/d1/join", b"2"),
            ("v3/city/devices/d2/up", b"3"),
        ]
    )
    got, _ = feed(client, data)
    assert filtered == [b"2"]
    assert got == [b"1", b"3"]  # on_message gets what no filter took


@pytest.mark.parametrize("suppress", [False, True])
def test_an_exception_in_on_message_is_raised_or_suppressed_as_paho_does(suppress: bool) -> None:
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="reader")
    client.suppress_exceptions = suppress
    seen: list[bytes] = []

    def on_message(_client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        seen.append(message.payload)
        raise RuntimeError("callback failed")

    ours, theirs = socket.socketpair()
    client.on_message = on_message
    client._sock = theirs  # type: ignore[assignment]
    theirs.setblocking(False)
    ours.sendall(publish_packet("t/1", b"a") + publish_packet("t/2", b"b"))
    ours.close()
    try:
        if suppress:
            assert client.loop_read() == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
            assert seen == [b"a", b"b"]
        else:
            with pytest.raises(RuntimeError, match="callback failed"):
                client.loop_read()
            assert seen == [b"a"]
    finally:
        theirs.close()
