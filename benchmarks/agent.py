"""End-to-end benchmark of the LoRaWAN agent: Mosquitto → agent → embedded broker.

    .venv/bin/python benchmarks/agent.py [--devices 10000] [--rate 5000] [--seconds 20]
                                         [--runs 3] [--qos 0|1] [--no-archive]
                                         [--broker-batch 1000] [--in-flight 2]
                                         [--linger 0.1] [--batch-wait 0.02]
                                         [--in-process [--profile FILE]
                                                       [--instructions [--stages]]]
                                         [--save FILE.json] [--compare FILE.json]

Every component runs as its own process: Mosquitto, the embedded NGSI-LD broker (`drehscheibe
broker serve`) and the agent (`drehscheibe agent run -c ...`). The benchmark registers
`--devices` devices (profile `temperature-humidity-lpp`, CayenneLPP battery, temperature and
humidity), then, for each run, starts a fresh agent and publishes The Things Stack v3 uplinks
(one per device in turn, fCnt counting up) at `--rate` per second for `--seconds` seconds, after
one warm-up round. It prints, per run and as the median over the runs:

* uplinks/s end to end: uplinks published ÷ (time from the first publish until the agent has
  committed all of them and its outbox is empty, i.e. every entity is in the broker);
* the agent's CPU per uplink (user + system of the agent process, from /proc, over the same
  window, including its MQTT client, pipeline, outbox, archive, sender and HTTP client), and
  the same by thread: the pipeline, the sender's workers, the MQTT client, the others (the
  agent names its threads; /proc/<pid>/task);
* the batch writes the sender made (entities per write is what `--linger` trades for latency);
* p50 / p99 latency from publish to entity in the broker: each uplink carries its publish time
  as gateway and network-server time, so it is the entity attribute's `observedAt`; the broker's
  `modifiedAt` of that attribute is when it was written. Measured on every device's last uplink
  (read back with `options=sysAttrs`);
* the agent's peak memory (VmHWM).

`--in-process` measures the agent's own stages without Mosquitto and without its threads: the
pipeline (`Pipeline.process`: parse, dedup, registry, codec, mapping, outbox commit, archive)
and the sender (`Sender.run_once`: lease, upsert to the broker, end of the lease) run in this
process on the same uplinks, and each is timed by this thread's CPU clock, batch by batch. On a
shared, loaded machine these figures vary far less than the end-to-end ones; they leave out
the MQTT client (paho) and the agent's idle threads. The pipeline's figure of a run is the mean
over its batches (the garbage collector's long pauses fall into a few of them).

`--in-process --instructions` counts instead the machine instructions the measured pipeline
and sender passes execute (valgrind's callgrind, collecting only inside them; one process per
part, two side by side). Counts hardly move with the machine's load, so they show a change of
a few per cent that the timings cannot; they say nothing of cache misses and waits. It needs
valgrind and a Python whose library keeps its symbols (a pyenv build does; for a stripped one
install its debug symbols); the run is some twenty-five times slower, so use a few hundred
devices: `--devices 500 --rate 250 --seconds 4 --runs 1`. `--stages` counts the pipeline's
stages too (parse, map: registry, codec and mapping, outbox: the commit of the batch's
entities and frame counters, archive, frames: the frame-counter checks), each in a run of its
own; only of the plain Python pipeline (`tools/native.py clean` first), as the compiled one
calls its stages directly.

`--save` writes the medians to a JSON file; `--compare` reads such a file (an earlier run, say
before a change) and prints each median's ratio to it.

The load generator writes MQTT packets on a raw socket (QoS 0, or QoS 1 reading PUBACKs), so it
costs little CPU next to the agent. All processes share the machine's cores: the figures are what
the agent achieves beside its broker and Mosquitto, not alone.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import importlib
import json
import os
import random
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SUBJECTS = ("Environment", "Weather", "Device", "Parking", "Transportation")
COUNTED = {
    "pipeline": ("agents.runtime._pipeline", "Pipeline.process"),
    "sender": ("agents.delivery._sender", "Sender.run_once"),
    "parse": ("agents.runtime._pipeline", "parse_message"),
    "map": ("agents.runtime._devices", "DeviceMapper.map_uplink"),
    "outbox": ("agents.delivery._outbox", "Outbox.put_many"),
    "archive": ("agents.delivery._archive", "UplinkArchive.add_many"),
    "frames": ("agents.delivery._dedup", "FrameCounters.check"),
}
"""What `--instructions` counts, each in a process of its own: (module, function) of each; the
pipeline and the sender, and with `--stages` the pipeline's stages (the others)."""
PARTS = ("pipeline", "sender")
STAGES = tuple(name for name in COUNTED if name not in PARTS)


@contextmanager
def counted(part: str) -> Iterator[None]:
    """Run the part's function through `sys.call_tracing` (where callgrind counts) while in
    the block."""
    module_name, path = COUNTED[part]
    owner: Any = importlib.import_module(module_name)
    *outer, name = path.split(".")
    for part in outer:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    def through(*args: Any, **kwargs: Any) -> Any:
        return sys.call_tracing(lambda: original(*args, **kwargs), ())

    setattr(owner, name, through)
    try:
        yield
    finally:
        setattr(owner, name, original)


def context_url(subject: str) -> str:
    return (
        f"https://raw.githubusercontent.com/smart-data-models/dataModel.{subject}/master/"
        "context.jsonld"
    )


WEATHER = context_url("Weather")
DEVICE = context_url("Device")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start (exit {process.poll()})") from None
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU time in a /proc `stat` file (of a process or of one of its threads)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


THREAD_GROUPS = (("agent-pipeline", "pipeline"), ("outbox-sender", "sender"), ("mqtt-", "mqtt"))
"""The agent's native thread names (prefixes) and the figure each counts in; others: `other`."""


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User + system CPU time so far of a process's threads, summed by `THREAD_GROUPS`."""
    found: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            seconds = stat_cpu_seconds(task / "stat")
        except OSError:  # the thread ended meanwhile
            continue
        group = next((g for prefix, g in THREAD_GROUPS if name.startswith(prefix)), "other")
        found[group] = found.get(group, 0.0) + seconds
    return found


def peak_memory_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def process(
    args: list[str], *, port: int, what: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        running = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_port(port, running, what)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {log.read_text(errors='replace')[-2000:]}") from None
        yield running
    finally:
        if running.poll() is None:
            running.terminate()
            try:
                running.wait(timeout=30)
            except subprocess.TimeoutExpired:
                running.kill()
                running.wait()


# -- MQTT load generator ---------------------------------------------------------------------


def _remaining(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length % 128
        length //= 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


class RawPublisher:
    """A minimal MQTT 3.1.1 publisher on a socket: CONNECT, then PUBLISH packets in bulk."""

    def __init__(self, port: int, *, qos: int) -> None:
        self.qos = qos
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = (
            _string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 600) + _string(f"bench-{port}")
        )
        self.sock.sendall(b"\x10" + _remaining(len(body)) + body)
        connack = self.sock.recv(4)
        if len(connack) < 4 or connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"Mosquitto refused the publisher: {connack!r}")
        self.acked = 0
        self._mid = 0
        self._reader: threading.Thread | None = None
        if qos:
            self._reader = threading.Thread(target=self._read_acks, daemon=True)
            self._reader.start()

    def _read_acks(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            whole = len(buffer) // 4 * 4  # PUBACK is 4 bytes: 0x40 0x02 id id
            self.acked += whole // 4
            buffer = buffer[whole:]

    def packet(self, topic: str, payload: bytes) -> bytes:
        if self.qos:
            self._mid = self._mid % 65535 + 1
            body = _string(topic) + struct.pack("!H", self._mid) + payload
            return b"\x32" + _remaining(len(body)) + body
        body = _string(topic) + payload
        return b"\x30" + _remaining(len(body)) + body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


def lpp_frame(battery: int, temperature: float, humidity: float) -> bytes:
    t = round(temperature * 10)
    return bytes([0, 0x78, battery, 1, 0x67, (t >> 8) & 0xFF, t & 0xFF, 2, 0x68, int(humidity * 2)])


@dataclass
class Template:
    topic: str
    parts: tuple[bytes, bytes, bytes, bytes]

    def render(self, at: str, f_cnt: int, frame: str) -> bytes:
        a, b, c, d = self.parts
        t = at.encode()
        return a + t + b + str(f_cnt).encode() + c + frame.encode() + d.replace(b"@T@", t)


def template(dev_eui: str) -> Template:
    device = f"dev-{dev_eui.lower()}"
    head = (
        '{"end_device_ids":{"device_id":"' + device + '","application_ids":{"application_id":'
        '"city"},"dev_eui":"' + dev_eui + '"},"received_at":"'
    )
    middle = '","uplink_message":{"f_port":1,"f_cnt":'
    frame = ',"frm_payload":"'
    tail = (
        '","rx_metadata":[{"gateway_ids":{"gateway_id":"gw-1","eui":"0242020000247803"},'
        '"time":"@T@","rssi":-87,"channel_rssi":-87,"snr":8.25}],"settings":{"data_rate":'
        '{"lora":{"bandwidth":125000,"spreading_factor":7,"coding_rate":"4/5"}},'
        '"frequency":"868100000"},"received_at":"@T@","consumed_airtime":"0.061696s"}}'
    )
    return Template(
        topic=f"v3/city/devices/{device}/up",
        parts=(head.encode(), middle.encode(), frame.encode(), tail.encode()),
    )


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def publish(
    publisher: RawPublisher,
    templates: list[Template],
    frames: list[str],
    *,
    count: int,
    rate: float,
    f_cnt: list[int],
) -> float:
    """Publish `count` uplinks at `rate` per second, device after device; returns the start."""
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    started = time.monotonic()
    sent = 0
    index = 0
    n = len(templates)
    while sent < count:
        at = now_text()
        chunk = bytearray()
        for _ in range(min(per_tick, count - sent)):
            device = index % n
            f_cnt[device] += 1
            tpl = templates[device]
            chunk += publisher.packet(
                tpl.topic, tpl.render(at, f_cnt[device], frames[f_cnt[device] % len(frames)])
            )
            index += 1
            sent += 1
        publisher.send(bytes(chunk))
        ahead = started + sent / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    return started


# -- the agent's figures -------------------------------------------------------------------


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=30).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def accepted(figures: dict[str, float]) -> float:
    """Uplinks the agent has dealt with: handled by the pipeline, or dropped by a full queue."""
    handled = sum(v for k, v in figures.items() if k.startswith("drehscheibe_uplinks_total{"))
    return handled + dropped(figures)


def dropped(figures: dict[str, float]) -> float:
    return sum(v for k, v in figures.items() if k.startswith("drehscheibe_source_overflow_total{"))


def wait_delivered(url: str, target: float, *, timeout: float) -> tuple[float, dict[str, float]]:
    """Wait until the agent has handled `target` uplinks and its outbox is empty."""
    deadline = time.monotonic() + timeout
    while True:
        figures = scrape(url)
        if accepted(figures) >= target and figures.get("drehscheibe_outbox_depth", 1) == 0:
            return time.monotonic(), figures
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the agent handled {accepted(figures):.0f} of {target:.0f} uplinks with "
                f"{figures.get('drehscheibe_outbox_depth')} entities still in its outbox"
            )
        time.sleep(0.25)


def latencies(broker_url: str, tenant: str) -> list[float]:
    """Seconds from publish (observedAt) to write (modifiedAt) of each device's last uplink."""
    from ngsi import Client

    found: list[float] = []
    with Client(broker_url, tenant=tenant, profile="embedded", timeout=60) as client:
        for entity in client.iter_entities(
            type="WeatherObserved", attrs="temperature", options="sysAttrs", context=WEATHER
        ):
            attribute = entity.get("temperature")
            if not isinstance(attribute, dict):
                continue
            observed = datetime.fromisoformat(attribute["observedAt"])
            modified = datetime.fromisoformat(attribute["modifiedAt"])
            found.append((modified - observed).total_seconds())
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- setup -----------------------------------------------------------------------------------


def register_devices(broker_url: str, tenant: str, dev_euis: list[str]) -> None:
    from agents.registry import RegisteredDevice
    from ngsi import Client

    entities = [
        RegisteredDevice(
            dev_eui=dev_eui,
            profile="temperature-humidity-lpp",
            measuring_point=f"bench-{dev_eui}",
            location={"type": "Point", "coordinates": [13.3 + i % 100 / 1000, 52.5]},
            controlled_property=("temperature", "humidity"),
        ).to_entity()
        for i, dev_eui in enumerate(dev_euis)
    ]
    with Client(broker_url, tenant=tenant, profile="embedded", timeout=120) as client:
        result = client.batch_upsert(entities, context=DEVICE)
    if result.failed:
        raise RuntimeError(f"registering devices failed: {result.failed[:3]}")


def agent_document(
    data: Path, *, broker_url: str, tenant: str, mqtt_port: int, http_port: int, args: Any
) -> dict[str, Any]:
    return {
        "agent": {"name": "bench-agent", "data_dir": str(data)},
        "broker": {
            "url": broker_url,
            "tenant": tenant,
            "profile": "embedded",
            "timeout": 30,
            "batch_size": args.broker_batch,
            "in_flight": args.in_flight,
            "linger": args.linger,
        },
        "http": {"host": "127.0.0.1", "port": http_port},
        "sources": [
            {
                "name": "tts",
                "network_server": "tts",
                "transport": "mqtt",
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": mqtt_port,
                    "protocol": "5" if args.qos else "3.1.1",
                    "qos": args.qos,
                    "persistent_session": bool(args.qos),
                    "receive_maximum": 2000,
                    "application": "city",
                    "events": ["up"],
                },
            }
        ],
        "pipeline": {
            "queue_size": 50000,
            "batch_size": args.pipeline_batch,
            "batch_wait": args.batch_wait,
        },
        "archive": {"enabled": not args.no_archive, "level": 1},
        "outbox": {"max_depth": None},
        "logging": {"level": "warning"},
    }


@dataclass
class RunResult:
    uplinks: int
    seconds: float
    cpu_ms_per_uplink: float
    broker_cpu_ms_per_uplink: float
    max_queue: float
    max_outbox: float
    lost: float
    p50: float
    p99: float
    peak_mib: float
    writes: float
    threads_ms: dict[str, float]

    @property
    def rate(self) -> float:
        """Uplinks that reached the broker per second (those a full queue dropped not counted)."""
        return (self.uplinks - self.lost) / self.seconds


_WRITES = "drehscheibe_broker_write_seconds_count"


class Watch:
    """Samples the agent's queue and outbox depth once a second while a run lasts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.max_queue = 0.0
        self.max_outbox = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                figures = scrape(self.url)
            except httpx.HTTPError:
                continue
            self.max_queue = max(self.max_queue, figures.get("drehscheibe_queue_depth", 0))
            self.max_outbox = max(self.max_outbox, figures.get("drehscheibe_outbox_depth", 0))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def one_run(
    work: Path,
    run: int,
    *,
    broker_url: str,
    broker_pid: int,
    tenant: str,
    mqtt_port: int,
    args: Any,
    templates: list[Template],
    frames: list[str],
    f_cnt: list[int],
) -> RunResult:
    http_port = free_port()
    data = work / f"agent-{run}"
    config = work / f"agent-{run}.yaml"
    config.write_text(
        yaml.safe_dump(
            agent_document(
                data,
                broker_url=broker_url,
                tenant=tenant,
                mqtt_port=mqtt_port,
                http_port=http_port,
                args=args,
            )
        )
    )
    url = f"http://127.0.0.1:{http_port}"
    command = [sys.executable, "-m", "drehscheibe", "agent", "run", "-c", str(config)]
    with process(command, port=http_port, what="agent", log=work / f"agent-{run}.log") as agent:
        deadline = time.monotonic() + 120
        while scrape(url).get('drehscheibe_registry_devices{tenant="' + tenant + '"}', 0) < len(
            templates
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the agent's registry did not load the devices")
            time.sleep(0.2)
        while scrape(url).get('drehscheibe_source_connected{source="tts",transport="mqtt"}') != 1:
            time.sleep(0.05)
        time.sleep(0.5)  # the subscription is made right after the CONNACK
        publisher = RawPublisher(mqtt_port, qos=args.qos)
        try:
            warm = len(templates)
            publish(publisher, templates, frames, count=warm, rate=args.rate, f_cnt=f_cnt)
            _, figures = wait_delivered(url, warm, timeout=300)
            base = accepted(figures)
            dropped_before = dropped(figures)
            writes_before = figures.get(_WRITES, 0)
            count = int(args.rate * args.seconds)
            cpu0 = cpu_seconds(agent.pid)
            threads0 = thread_cpu_seconds(agent.pid)
            broker0 = cpu_seconds(broker_pid)
            watch = Watch(url)
            started = publish(
                publisher, templates, frames, count=count, rate=args.rate, f_cnt=f_cnt
            )
            ended, figures = wait_delivered(url, base + count, timeout=600)
            cpu1 = cpu_seconds(agent.pid)
            threads1 = thread_cpu_seconds(agent.pid)
            broker1 = cpu_seconds(broker_pid)
            watch.stop()
        finally:
            publisher.close()
        peak = peak_memory_mib(agent.pid)
        lost = dropped(figures) - dropped_before
        writes = figures.get(_WRITES, 0) - writes_before
    seconds = ended - started
    found = latencies(broker_url, tenant)
    return RunResult(
        uplinks=count,
        seconds=seconds,
        cpu_ms_per_uplink=(cpu1 - cpu0) / count * 1000,
        broker_cpu_ms_per_uplink=(broker1 - broker0) / count * 1000,
        max_queue=watch.max_queue,
        max_outbox=watch.max_outbox,
        lost=lost,
        p50=percentile(found, 0.5),
        p99=percentile(found, 0.99),
        peak_mib=peak,
        writes=writes,
        threads_ms={
            group: (threads1.get(group, 0.0) - threads0.get(group, 0.0)) / count * 1000
            for group in (*(g for _, g in THREAD_GROUPS), "other")
        },
    )


def in_process(
    work: Path,
    *,
    broker_url: str,
    broker_pid: int,
    tenant: str,
    args: Any,
    templates: list[Template],
    frames: list[str],
    f_cnt: list[int],
) -> None:
    """The `--in-process` figures: pipeline and sender CPU per uplink, batch by batch."""
    from agents.delivery import Backoff, NgsiSink, Outbox, Sender, UplinkArchive
    from agents.runtime import AgentConfig, Message, MessageQueue, Pipeline, _pipeline, source_info
    from agents.runtime._devices import build_mapper
    from ngsi import Client

    document = agent_document(
        work / "agent", broker_url=broker_url, tenant=tenant, mqtt_port=1, http_port=1, args=args
    )
    config = AgentConfig.from_mapping(document)
    config.agent.data_dir.mkdir(parents=True, exist_ok=True)
    batch = config.pipeline.batch_size
    with (
        Client(broker_url, tenant=tenant, profile="embedded", timeout=60) as client,
        Outbox(config.outbox_path) as outbox,
        ExitStack() as measuring,
    ):
        archive = (
            UplinkArchive(config.archive_path, level=config.archive.level)
            if config.archive.enabled
            else None
        )
        mapper = build_mapper(config, client=client)
        try:
            mapper.resync()
            sender = Sender(
                outbox, NgsiSink(client), batch_size=config.broker.batch_size, backoff=Backoff()
            )
            info = source_info(config.sources[0], default_tenant=tenant)
            pipeline = Pipeline(MessageQueue(1), outbox, mapper, archive=archive, batch_size=batch)

            def messages(count: int) -> list[Message]:
                out: list[Message] = []
                at = now_text()
                for index in range(count):
                    device = index % len(templates)
                    f_cnt[device] += 1
                    tpl = templates[device]
                    body = tpl.render(at, f_cnt[device], frames[f_cnt[device] % len(frames)])
                    out.append(
                        Message(source=info, payload=body, received_at=time.time(), topic=tpl.topic)
                    )
                return out

            def drain() -> tuple[float, int]:
                started = time.thread_time()
                while sender.run_once().leased:
                    pass
                return time.thread_time() - started, outbox.depth

            warm = messages(len(templates))
            for start in range(0, len(warm), batch):
                pipeline.process(warm[start : start + batch])
            drain()
            tune_gc = getattr(_pipeline, "tune_gc", None)  # (an agent from before it)
            if tune_gc is not None:
                tune_gc()  # as `Pipeline.start` does in the agent
            count = max(batch, int(args.rate * args.seconds) // batch * batch)
            print(f"{args.runs} runs of {count} uplinks in batches of {batch}", flush=True)
            pipe_runs: list[float] = []
            send_runs: list[float] = []
            profiles = (
                (cProfile.Profile(time.thread_time), cProfile.Profile(time.thread_time))
                if args.profile is not None
                else None
            )
            if args.instructions_of is not None:
                measuring.enter_context(counted(args.instructions_of))
            for run in range(args.runs):
                todo = messages(count)
                per_batch: list[float] = []
                for start in range(0, count, batch):
                    chunk = todo[start : start + batch]
                    began = time.thread_time()
                    if profiles is not None:
                        profiles[0].runcall(pipeline.process, chunk)
                    else:
                        pipeline.process(chunk)
                    per_batch.append((time.thread_time() - began) / len(chunk) * 1000)
                broker0 = cpu_seconds(broker_pid)
                if profiles is not None:
                    spent, left = profiles[1].runcall(drain)
                else:
                    spent, left = drain()
                broker_ms = (cpu_seconds(broker_pid) - broker0) / count * 1000
                if left:
                    raise RuntimeError(f"{left} entities stayed in the outbox")
                pipe = statistics.fmean(per_batch)  # the mean: collections land in few batches
                send = spent / count * 1000
                pipe_runs.append(pipe)
                send_runs.append(send)
                print(
                    f"  run {run + 1}: pipeline {pipe:.3f} ms/uplink (mean of "
                    f"{len(per_batch)} batches, median {statistics.median(per_batch):.3f}, best "
                    f"{min(per_batch):.3f}), sender "
                    f"{send:.3f} ms/uplink, together {pipe + send:.3f}; broker CPU "
                    f"{broker_ms:.3f} ms/uplink",
                    flush=True,
                )
            if profiles is not None and args.profile is not None:
                profiles[0].dump_stats(f"{args.profile}.pipeline")
                profiles[1].dump_stats(f"{args.profile}.sender")
                print(f"profiles written to {args.profile}.pipeline and {args.profile}.sender")
            pipe = statistics.median(pipe_runs)
            send = statistics.median(send_runs)
            print(
                f"median of {args.runs}: pipeline {pipe:.3f} + sender {send:.3f} = "
                f"{pipe + send:.3f} ms of agent CPU per uplink (without MQTT)"
            )
            figures = {
                "pipeline_cpu_ms_per_uplink": pipe,
                "sender_cpu_ms_per_uplink": send,
                "agent_cpu_ms_per_uplink": pipe + send,
                "runs": args.runs,
                "settings": {"devices": len(templates), "uplinks": count, "in_process": True},
            }
            if args.save is not None:
                args.save.write_text(json.dumps(figures, indent=2) + "\n")
            if args.compare is not None:
                print_ratios(figures, args.compare)
        finally:
            mapper.close()
            if archive is not None:
                archive.close()


def count_instructions(args: Any) -> None:
    """`--instructions`: this benchmark with `--in-process` under callgrind, once per part,
    collecting only inside `sys.call_tracing` (which the measured passes are run through)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (apt install valgrind)")
    pipeline_file = importlib.import_module("agents.runtime._pipeline").__file__ or ""
    if args.stages and not pipeline_file.endswith(".py"):
        raise SystemExit(
            "--stages counts the stages of the plain Python pipeline (compiled, it calls them "
            "directly): run `tools/native.py clean` first, and `tools/native.py build` after"
        )
    inner = [arg for arg in sys.argv[1:] if arg not in ("--instructions", "--stages")]
    parts = list(COUNTED) if args.stages else list(PARTS)
    work = Path(tempfile.mkdtemp(prefix="agent-instructions-"))
    running: dict[str, subprocess.Popen[bytes]] = {}
    print(f"counting instructions under valgrind (logs in {work}) ...", flush=True)
    try:
        for part in parts:
            if len(running) >= 2:  # two at a time, on a machine of two cores
                first = next(iter(running))
                report_instructions(work, first, running.pop(first))
            command = [
                valgrind,
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=sys_call_tracing",
                f"--callgrind-out-file={work / part}.callgrind",
                sys.executable,
                str(Path(__file__).resolve()),
                *inner,
                "--instructions-of",
                part,
            ]
            with (work / f"{part}.log").open("wb") as log:
                running[part] = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONHASHSEED": "0"},
                )
        while running:
            first = next(iter(running))
            report_instructions(work, first, running.pop(first))
    finally:
        for child in running.values():
            child.kill()
            child.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report_instructions(work: Path, part: str, child: subprocess.Popen[bytes]) -> None:
    """Wait for one `--instructions` run and print its count per uplink."""
    child.wait()
    log_text = (work / f"{part}.log").read_text(errors="replace")
    if child.returncode:
        raise SystemExit(f"the {part} run failed:\n{log_text[-2000:]}")
    measured = re.search(r"^(\d+) runs of (\d+) uplinks", log_text, re.MULTILINE)
    summary = re.search(r"^summary: (\d+)$", (work / f"{part}.callgrind").read_text(), re.MULTILINE)
    if measured is None or summary is None:
        raise SystemExit(f"the {part} run printed no count:\n{log_text[-2000:]}")
    uplinks = int(measured[1]) * int(measured[2])
    total = int(summary[1])
    if total == 0:
        raise SystemExit(
            "callgrind counted nothing: this Python's library has no symbol "
            "sys_call_tracing (a stripped build)"
        )
    print(f"{part}: {total / uplinks:,.0f} instructions per uplink ({total:,} for {uplinks})")


def print_ratios(figures: dict[str, Any], path: Path) -> None:
    """Each figure's ratio to the same figure in an earlier `--save` file."""
    earlier = json.loads(path.read_text())
    print(f"ratios to {path} (now / then):")
    for key, value in figures.items():
        then = earlier.get(key)
        if isinstance(value, float) and isinstance(then, int | float) and then:
            print(f"  {key}: {value:.3f} / {then:.3f} = {value / then:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=5000.0, help="uplinks per second offered")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of a measured run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=0)
    parser.add_argument("--no-archive", action="store_true", help="do not archive raw uplinks")
    parser.add_argument(
        "--broker-batch",
        type=int,
        default=1000,
        help="entities the sender leases per pass (the agent's broker.batch_size)",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=2,
        help="batch upserts the sender keeps in flight (the agent's broker.in_flight)",
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=0.1,
        help="seconds the sender waits for a fuller batch (the agent's broker.linger)",
    )
    parser.add_argument(
        "--batch-wait",
        type=float,
        default=0.02,
        help="seconds the pipeline waits for a fuller batch (the agent's pipeline.batch_wait)",
    )
    parser.add_argument(
        "--pipeline-batch",
        type=int,
        default=1000,
        help="uplinks the pipeline takes per batch at most (the agent's pipeline.batch_size; "
        "with --in-process, the size of every batch)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="time the pipeline and the sender in this process (no MQTT, thread CPU clock)",
    )
    parser.add_argument("--save", type=Path, help="write the medians to this JSON file")
    parser.add_argument("--compare", type=Path, help="print ratios to the medians in this file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="with --in-process: write a cProfile of the measured pipeline and sender passes "
        "(thread CPU clock) to this file (FILE.pipeline and FILE.sender)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="with --in-process: count the instructions of the measured pipeline and sender "
        "passes under valgrind instead of timing them",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="with --instructions: count the pipeline's stages too (" + ", ".join(STAGES) + ")",
    )
    parser.add_argument("--instructions-of", choices=COUNTED, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instructions:
        if not args.in_process:
            parser.error("--instructions needs --in-process")
        count_instructions(args)
        return

    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    work = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    tenant = "bench"
    rng = random.Random(7)
    dev_euis = [f"70B3D57E{n:08X}" for n in range(args.devices)]
    templates = [template(dev_eui) for dev_eui in dev_euis]
    frames = [
        base64.b64encode(
            lpp_frame(rng.randint(20, 100), rng.uniform(-10, 35), rng.uniform(20, 95))
        ).decode()
        for _ in range(64)
    ]
    f_cnt = [0] * len(templates)
    results: list[RunResult] = []
    try:
        mqtt_port = free_port()
        (work / "mosquitto.conf").write_text(
            f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_inflight_messages 2000\nmax_queued_messages 1000000\n"
            "max_queued_bytes 0\n"
        )
        broker_port = free_port()
        preload: list[str] = []
        for subject in SUBJECTS:
            file = SHARED / "sdm" / f"dataModel.{subject}" / "context.jsonld"
            preload += ["--preload-context", f"{context_url(subject)}={file}"]
        broker_command = [
            sys.executable,
            "-m",
            "drehscheibe",
            "broker",
            "serve",
            "--data",
            str(work / "broker"),
            "--port",
            str(broker_port),
            *preload,
        ]
        with (
            process(
                [mosquitto, "-c", str(work / "mosquitto.conf")],
                port=mqtt_port,
                what="mosquitto",
                log=work / "mosquitto.log",
            ),
            process(
                broker_command, port=broker_port, what="broker", log=work / "broker.log"
            ) as broker,
        ):
            broker_url = f"http://127.0.0.1:{broker_port}"
            print(f"registering {args.devices} devices ...", flush=True)
            register_devices(broker_url, tenant, dev_euis)
            print(
                f"{args.runs} runs: {args.rate:.0f} uplinks/s offered for {args.seconds:.0f} s, "
                f"QoS {args.qos}, archive {'off' if args.no_archive else 'on'}",
                flush=True,
            )
            if args.in_process:
                in_process(
                    work,
                    broker_url=broker_url,
                    broker_pid=broker.pid,
                    tenant=tenant,
                    args=args,
                    templates=templates,
                    frames=frames,
                    f_cnt=f_cnt,
                )
                return
            for run in range(args.runs):
                result = one_run(
                    work,
                    run,
                    broker_url=broker_url,
                    broker_pid=broker.pid,
                    tenant=tenant,
                    mqtt_port=mqtt_port,
                    args=args,
                    templates=templates,
                    frames=frames,
                    f_cnt=f_cnt,
                )
                results.append(result)
                print(
                    f"  run {run + 1}: {result.rate:7.0f} uplinks/s end to end "
                    f"({result.uplinks} in {result.seconds:.1f} s), "
                    f"agent CPU {result.cpu_ms_per_uplink:.3f} ms/uplink, "
                    f"latency p50 {result.p50 * 1000:.0f} ms p99 {result.p99 * 1000:.0f} ms, "
                    f"peak memory {result.peak_mib:.0f} MiB; broker CPU "
                    f"{result.broker_cpu_ms_per_uplink:.3f} ms/uplink, largest queue "
                    f"{result.max_queue:.0f}, largest outbox {result.max_outbox:.0f}, "
                    f"{result.writes:.0f} batch writes; agent CPU by thread "
                    + ", ".join(f"{g} {ms:.3f}" for g, ms in result.threads_ms.items())
                    + " ms/uplink"
                    + (f"; {result.lost:.0f} DROPPED (queue full, QoS 0)" if result.lost else ""),
                    flush=True,
                )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"working folder kept: {work}")
    if results:
        print(
            f"median of {len(results)}: "
            f"{statistics.median(r.rate for r in results):.0f} uplinks/s end to end, "
            f"agent CPU {statistics.median(r.cpu_ms_per_uplink for r in results):.3f} ms/uplink, "
            f"latency p50 {statistics.median(r.p50 for r in results) * 1000:.0f} ms "
            f"p99 {statistics.median(r.p99 for r in results) * 1000:.0f} ms, "
            f"peak memory {statistics.median(r.peak_mib for r in results):.0f} MiB; "
            "agent CPU by thread "
            + ", ".join(
                f"{group} {statistics.median(r.threads_ms[group] for r in results):.3f}"
                for group in results[0].threads_ms
            )
            + " ms/uplink"
        )
        print("targets: >= 5000 uplinks/s sustained, <= 0.1 ms agent CPU per uplink")
        medians = {
            "uplinks_per_second": statistics.median(r.rate for r in results),
            "agent_cpu_ms_per_uplink": statistics.median(r.cpu_ms_per_uplink for r in results),
            "broker_cpu_ms_per_uplink": statistics.median(
                r.broker_cpu_ms_per_uplink for r in results
            ),
            "latency_p50_ms": statistics.median(r.p50 for r in results) * 1000,
            "latency_p99_ms": statistics.median(r.p99 for r in results) * 1000,
            "peak_memory_mib": statistics.median(r.peak_mib for r in results),
            **{
                f"{group}_cpu_ms_per_uplink": statistics.median(
                    r.threads_ms[group] for r in results
                )
                for group in results[0].threads_ms
            },
            "runs": len(results),
            "settings": {
                "devices": args.devices,
                "rate": args.rate,
                "seconds": args.seconds,
                "qos": args.qos,
                "archive": not args.no_archive,
                "in_flight": args.in_flight,
                "linger": args.linger,
                "batch_wait": args.batch_wait,
                "pipeline_batch": args.pipeline_batch,
            },
        }
        if args.save is not None:
            args.save.write_text(json.dumps(medians, indent=2) + "\n")
        if args.compare is not None:
            print_ratios(medians, args.compare)


if __name__ == "__main__":
    main()
