"""Reading a text/event-stream: the benchmark and the tests use it on real HTTP answers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass
class Received:
    name: str
    data: str
    id: str | None

    @property
    def value(self):
        return json.loads(self.data) if self.data else None


def parse(chunks: Iterable[bytes]) -> Iterator[Received]:
    """The events in a stream of bytes (comments and `retry:` lines are skipped)."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            name, data, event_id = "message", [], None
            for line in block.decode().split("\n"):
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    event_id = value
            if data or event_id is not None:
                yield Received(name, "\n".join(data), event_id)
