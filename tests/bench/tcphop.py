"""A TCP hop that can be blackholed: ``python -m tests.bench.tcphop --port N --target H:P``.

It forwards every connection to the target. ``SIGUSR1`` blackholes it: from then on no byte
is forwarded either way and new connections are accepted but never connected onward, as when
a network path silently drops packets (nothing is refused, nothing is closed). ``SIGUSR2``
heals it: held data flows again. Used to hang PostgreSQL for one API without touching the
machine's shared server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

CHUNK = 65536


async def pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, open_: asyncio.Event
) -> None:
    try:
        while True:
            await open_.wait()
            data = await reader.read(CHUNK)
            if not data:
                break
            await open_.wait()  # blackholed while reading: hold the bytes
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def run(port: int, host: str, target_port: int) -> None:
    open_ = asyncio.Event()
    open_.set()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, open_.clear)
    loop.add_signal_handler(signal.SIGUSR2, open_.set)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await open_.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, up_writer, open_), pump(up_reader, writer, open_))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.tcphop")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True, help="host:port")
    args = parser.parse_args()
    host, _, target_port = args.target.rpartition(":")
    asyncio.run(run(args.port, host, int(target_port)))


if __name__ == "__main__":
    main()
