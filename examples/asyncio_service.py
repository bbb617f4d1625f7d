"""A plain asyncio HTTP service with a thread pool, reporting the contract through the adapters.

Run: ``python examples/asyncio_service.py [--port 8080] [--prometheus 127.0.0.1:9464]``, then
``curl http://127.0.0.1:8080/hello`` and scrape the URL it prints.  SIGTERM or Ctrl-C stops it
after the requests in flight.

Each connection is an asyncio task (its wait for its first step is measured:
``task_timing=True``); each request hashes its path in a thread pool (submit → start measured,
back-pressure at 1000 waiting); ``asyncio.to_thread`` goes to the loop's default executor,
instrumented as ``http.executor``.  See docs/adapters.md for what each series means.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal

import schedobs
from schedobs.adapters import AsyncioInstrumentation, InstrumentedThreadPoolExecutor
from schedobs.runtime import RejectedError


def digest(path: bytes) -> str:
    """The CPU work of a request, done off the event loop."""
    return hashlib.sha256(path * 2000).hexdigest()


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pool: InstrumentedThreadPoolExecutor
) -> None:
    request_line = await reader.readline()  # b"GET /path HTTP/1.1\r\n"
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # headers: not needed here
    parts = request_line.split()
    path = parts[1] if len(parts) > 1 else b"/"
    loop = asyncio.get_running_loop()
    try:
        body = (await loop.run_in_executor(pool, digest, path)).encode()
        body += b" " + str(await asyncio.to_thread(len, path)).encode()  # the default executor
        status = b"200 OK"
    except RejectedError:  # the pool's queue is full: shed the load, say so
        body, status = b"busy", b"503 Service Unavailable"
    writer.write(
        b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n" + body
    )  # fmt: skip
    await writer.drain()
    writer.close()


async def serve(port: int, prometheus: str) -> None:
    telemetry = schedobs.configure("asyncio-service", prometheus=prometheus)
    AsyncioInstrumentation(name="http", task_timing=True, default_executor=True).install()
    pool = InstrumentedThreadPoolExecutor(max_workers=4, name="hashing", max_queued=1000)
    server = await asyncio.start_server(lambda r, w: handle(r, w, pool), "127.0.0.1", port)
    address = server.sockets[0].getsockname()
    print(f"serving http://{address[0]}:{address[1]}/  scrape {telemetry.prometheus_url}",
          flush=True)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    pool.shutdown(wait=True)
    telemetry.shutdown(timeout=5)
    print("stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--prometheus", default="127.0.0.1:9464")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.prometheus))


if __name__ == "__main__":
    main()
