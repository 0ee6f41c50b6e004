"""A consumer group member for the lag tests, run as a process: ``python _member.py BOOTSTRAP TOPIC GROUP``.

Subscribes, commits every record synchronously after reading it and prints ``committed <offset>``.
"""

from __future__ import annotations

import sys

from confluent_kafka import Consumer


def main(bootstrap: str, topic: str, group: str) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "allow.auto.create.topics": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.subscribe([topic])
    print("started", flush=True)
    while True:
        msg = consumer.poll(0.1)
        if msg is None or msg.error() is not None:
            continue
        consumer.commit(message=msg, asynchronous=False)
        print(f"committed {(msg.offset() or 0) + 1}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
