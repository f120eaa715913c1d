"""`drehscheibe demo`: the whole path on one machine with the embedded defaults."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from drehscheibe._output import ExitCode, fail


def demo(
    *,
    data: Annotated[
        Path, typer.Option("--data", help="Where the demo keeps its data between runs.")
    ] = Path("demo-data"),
    port: Annotated[int, typer.Option(help="Port of the embedded NGSI-LD broker.")] = 1026,
    web_port: Annotated[int, typer.Option(help="Port of the page.")] = 8090,
    seconds: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: run until Ctrl-C)."),
    ] = None,
) -> None:
    """Run the embedded broker with sample city entities; Ctrl-C stops everything."""
    from drehscheibe._seed import seed_city
    from drehscheibe._stack import Stack, StackError
    from models._contexts import write_subject_contexts
    from ngsi import Client, NgsiError

    contexts = data / "contexts"
    write_subject_contexts(contexts)
    stack = Stack(log_dir=data / "logs")
    broker = f"http://127.0.0.1:{port}"

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        stack.start_drehscheibe(
            "broker",
            "broker",
            "serve",
            "--data",
            str(data / "broker"),
            "--port",
            str(port),
            "--contexts-dir",
            str(contexts),
        )
        stack.wait_http("broker", f"{broker}/version")
        page = f"http://127.0.0.1:{web_port}/"
        stack.start_drehscheibe(
            "web",
            "web",
            "serve",
            "--broker",
            broker,
            "--broker-profile",
            "embedded",
            "--port",
            str(web_port),
        )
        stack.wait_http("web", f"{page}api/config")
        with Client(broker, profile="embedded") as client:
            results = seed_city(client)
        written = sum(len(r.succeeded) for r in results)
        failed = [f for r in results for f in r.failed]
        if failed:
            fail(f"{len(failed)} sample entities were refused: {failed[0]}", ExitCode.ERROR)
        typer.echo(
            f"""
Drehscheibe demo is running.

  NGSI-LD broker   {broker}/ngsi-ld/v1   ({written} sample entities for Düsseldorf)
  page             {page}
  data and logs    {data.resolve()}

Try, in another terminal:
  .venv/bin/drehscheibe entities types
  .venv/bin/drehscheibe entities list --type AirQualityObserved \\
      --context https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld
  curl '{broker}/ngsi-ld/v1/entities?type=https://smartdatamodels.org/dataModel.Environment/AirQualityObserved&options=keyValues'

Press Ctrl-C to stop.""",
            err=True,
        )
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            if stack.dead():
                fail(f"{', '.join(stack.dead())} stopped; see {data / 'logs'}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("\nstopping ...", err=True)
    except (StackError, NgsiError) as exc:
        fail(str(exc))
    finally:
        stack.stop()
