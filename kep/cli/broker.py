"""``kep broker``: run the embedded broker in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import threading

import typer

from kep.broker import BrokerError, EmbeddedBroker


def command(
    port: int = typer.Option(9092, "--port", help="Port on 127.0.0.1 to listen on."),
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu) on loopback until Ctrl-C.

    It comes with kep-kafka's optional extra 'embedded' (tests and demos only; not in the image).
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        broker = EmbeddedBroker(port).start()
    except BrokerError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"embedded broker ready on {broker.bootstrap_servers} (log: {broker.log_path}); Ctrl-C to stop"
    )
    try:
        while not stop.wait(0.5):
            if not broker.is_running():
                typer.secho(f"error: broker exited; log: {broker.log_path}", fg="red", err=True)
                raise typer.Exit(1)
    finally:
        broker.stop()
        typer.echo("embedded broker stopped")
