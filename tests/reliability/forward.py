"""A TCP forwarder for the multi-host test: `python forward.py LISTEN=TARGET ...`, each side
`host:port`. It prints `ready` once every listener is open and `accept <listen>` per connection
(the test counts them per simulated host). Plain asyncio, no Django: it starts in a blink and
needs nothing installed, where socat or iptables may be missing.

PostgreSQL and Redis listen on the machine's loopback only; the worker "hosts" of the test live
in network namespaces of their own and reach them through this forwarder on their veth address.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def handler(listen: str, target: tuple[str, int]):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        print("accept", listen, flush=True)
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return handle


async def main(specs: list[str]) -> None:
    servers = []
    for spec in specs:
        listen, _, target = spec.partition("=")
        servers.append(await asyncio.start_server(handler(listen, split(target)), *split(listen)))
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
