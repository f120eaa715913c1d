"""`drehscheibe demo`: the whole path on one machine.

Started in this order, each a child process of the demo, and stopped in reverse on Ctrl-C or
SIGTERM: the embedded NGSI-LD broker, Mosquitto (`/usr/sbin/mosquitto`), the LoRaWAN agent,
the traffic, environment and planning consumers, `subscriptions apply` of the sample consumers
file (a copy whose endpoints reach the demo's consumers), the simulated fleet (registered first,
then publishing as The Things Stack does) and the page. Everything lives below `--data`:
configurations written for the ports of the run, logs, and each component's state, which a
second run on the same folder keeps.
"""

from __future__ import annotations

import shutil
import signal
import socket
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from drehscheibe._output import ExitCode, fail

_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        fail(
            "Mosquitto is not installed: `make demo` installs it, or "
            "`sudo apt-get install mosquitto`",
            ExitCode.USAGE,
        )
    return found


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: a port left in TIME_WAIT by the last run is free, a listener not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def demo(
    *,
    data: Annotated[
        Path, typer.Option("--data", help="Where the demo keeps its data between runs.")
    ] = Path("demo-data"),
    port: Annotated[int, typer.Option(help="Port of the embedded NGSI-LD broker.")] = 1026,
    mqtt_port: Annotated[int, typer.Option(help="Port of Mosquitto (MQTT).")] = 1883,
    agent_port: Annotated[
        int, typer.Option(help="Port of the agent (metrics, health, notifications).")
    ] = 8080,
    web_port: Annotated[int, typer.Option(help="Port of the page.")] = 8090,
    traffic_port: Annotated[int, typer.Option(help="Port of the traffic consumer.")] = 8091,
    environment_port: Annotated[int, typer.Option(help="Port of the environment consumer.")] = 8092,
    planning_port: Annotated[int, typer.Option(help="Port of the planning consumer.")] = 8093,
    devices: Annotated[int, typer.Option(help="Simulated devices across Düsseldorf.", min=1)] = 50,
    rate: Annotated[
        float, typer.Option(help="Simulated uplinks per second, all devices together.", min=0.01)
    ] = 5.0,
    seconds: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: run until Ctrl-C)."),
    ] = None,
) -> None:
    """Run the whole path: broker, MQTT, agent, consumers, a simulated fleet and the page."""
    from drehscheibe._demo import (
        ENVIRONMENT_SECRET_ENV,
        SECRET_HEADER,
        DemoLayout,
        DemoPorts,
        environment_secret,
        write_agent_config,
        write_consumers_file,
        write_mosquitto_config,
    )
    from drehscheibe._stack import Stack, StackError
    from models import write_subject_contexts

    mosquitto = _mosquitto()
    template = _EXAMPLES / "consumers.yaml"
    if not template.is_file():
        fail(f"the sample consumers file is missing: {template}", ExitCode.USAGE)
    layout = DemoLayout(data)
    ports = DemoPorts(
        broker=port,
        mqtt=mqtt_port,
        agent=agent_port,
        web=web_port,
        traffic=traffic_port,
        environment=environment_port,
        planning=planning_port,
    )
    taken = {
        option: number
        for option, number in (
            ("--port", ports.broker),
            ("--mqtt-port", ports.mqtt),
            ("--agent-port", ports.agent),
            ("--web-port", ports.web),
            ("--traffic-port", ports.traffic),
            ("--environment-port", ports.environment),
            ("--planning-port", ports.planning),
        )
        if _port_in_use(number)
    }
    if taken:
        fail(
            "ports in use on 127.0.0.1: "
            + ", ".join(f"{number} ({option})" for option, number in taken.items())
            + "; stop what listens there or choose other ports with these options",
            ExitCode.USAGE,
        )
    write_subject_contexts(layout.contexts)
    mosquitto_conf = write_mosquitto_config(layout, ports)
    agent_conf = write_agent_config(layout, ports)
    try:
        consumers_file, planning_mqtt = write_consumers_file(template, layout, ports)
    except ValueError as exc:
        fail(str(exc), ExitCode.INVALID)
    secret_env = {ENVIRONMENT_SECRET_ENV: environment_secret(layout)}
    layout.consumers.mkdir(parents=True, exist_ok=True)
    stack = Stack(log_dir=layout.logs)
    broker = f"http://127.0.0.1:{ports.broker}"
    agent = f"http://127.0.0.1:{ports.agent}"
    page = f"http://127.0.0.1:{ports.web}/"

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell without job control starts a background `demo &` with SIGINT
    # ignored, and Python then leaves it ignored.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    try:
        typer.echo(f"starting the demo in {layout.data} ...", err=True)
        stack.start_drehscheibe(
            "broker",
            "broker",
            "serve",
            "--data",
            str(layout.broker),
            "--port",
            str(ports.broker),
            "--contexts-dir",
            str(layout.contexts),
        )
        stack.wait_http("broker", f"{broker}/version")
        stack.start("mosquitto", [mosquitto, "-c", str(mosquitto_conf)])
        stack.wait_port("mosquitto", ports.mqtt)
        stack.start_drehscheibe("agent", "agent", "run", "-c", str(agent_conf))
        stack.wait_http("agent", f"{agent}/healthz")
        stack.start_drehscheibe(
            "traffic",
            "consume",
            "run",
            "traffic",
            "--port",
            str(ports.traffic),
            "--out",
            str(layout.traffic_out),
        )
        stack.start_drehscheibe(
            "environment",
            "consume",
            "run",
            "environment",
            "--port",
            str(ports.environment),
            "--out",
            str(layout.environment_out),
            "--secret-header",
            SECRET_HEADER,
            "--secret-env",
            ENVIRONMENT_SECRET_ENV,
            env=secret_env,
        )
        planning_args = ["--port", str(ports.planning), "--out", str(layout.planning_out)]
        if planning_mqtt is not None:
            planning_args += ["--mqtt", planning_mqtt, "--name", "demo-planning"]
        stack.start_drehscheibe("planning", "consume", "run", "planning", *planning_args)
        for name, consumer_port in (
            ("traffic", ports.traffic),
            ("environment", ports.environment),
            ("planning", ports.planning),
        ):
            stack.wait_http(name, f"http://127.0.0.1:{consumer_port}/health")
        stack.run_drehscheibe(
            "subscriptions",
            "subscriptions",
            "apply",
            "-f",
            str(consumers_file),
            "--broker",
            broker,
            env=secret_env,
        )
        stack.start_drehscheibe(
            "simulator",
            "simulate",
            "run",
            "--register",
            "--broker",
            broker,
            "--devices",
            str(devices),
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            str(ports.mqtt),
            "--qos",
            "1",
            "--rate",
            f"{rate:g}",
            "--state",
            str(layout.simulator_state),
        )
        stack.start_drehscheibe(
            "web",
            "web",
            "serve",
            "--broker",
            broker,
            "--broker-profile",
            "embedded",
            "--port",
            str(ports.web),
        )
        stack.wait_http("web", f"{page}api/config")
        typer.echo(
            f"""
Drehscheibe demo is running: {devices} simulated devices in Düsseldorf, {rate:g} uplinks/s.

  NGSI-LD broker   {broker}/ngsi-ld/v1
  MQTT (Mosquitto) mqtt://127.0.0.1:{ports.mqtt}   (simulated The Things Stack uplinks)
  agent metrics    {agent}/metrics   (health {agent}/readyz)
  page             {page}
  consumers        traffic      {layout.traffic_out}
                   environment  {layout.environment_out / "changes.jsonl"}
                   planning     {layout.planning_out}
  configurations   {layout.config}
  logs             {layout.logs}

Try, in another terminal:
  .venv/bin/drehscheibe devices list --broker {broker}
  .venv/bin/drehscheibe entities types --broker {broker}
  .venv/bin/drehscheibe consume query {layout.planning_out} --limit 5

Press Ctrl-C to stop.""",
            err=True,
        )
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            if stack.dead():
                fail(f"{', '.join(stack.dead())} stopped; see {layout.logs}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("\nstopping ...", err=True)
    except StackError as exc:
        fail(str(exc))
    finally:
        # A second Ctrl-C must not cut the stop short and leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
