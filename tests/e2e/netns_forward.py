"""TCP forwarding between network namespaces, for a control plane that runs inside a lab
namespace (so it sees the real source address of each client, which `GET /v1/whoami` is
about) while PostgreSQL and anvil stay on the host's loopback.

A socket belongs to the namespace its creating thread was in, so each socket is made by a
short-lived thread that first joins the namespace (setns(2); Python 3.11 has no os.setns).
The forwarders run on their own event loop in a thread: a test that blocks never stalls them."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Callable
from typing import Final

CLONE_NEWNET: Final = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def socket_in(namespace: str | None) -> socket.socket:
    """A TCP socket in `namespace` (None: this process's own)."""
    if namespace is None:
        return socket.socket()
    made: list[socket.socket] = []
    failed: list[OSError] = []

    def make() -> None:
        fd = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                failed.append(OSError(ctypes.get_errno(), f"setns {namespace}"))
                return
        finally:
            os.close(fd)
        made.append(socket.socket())

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


class Forwarders:
    """`add(...)` listens in one namespace and connects each client to a target in another."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []

    def _call(self, make: Callable[[], object]) -> object:
        async def wrapped() -> object:
            result = make()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(30)

    def add(
        self,
        listen: tuple[str | None, str, int],
        target: tuple[str | None, str, int],
    ) -> None:
        listen_ns, host, port = listen
        target_ns, target_host, target_port = target
        sock = socket_in(listen_ns)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            out = socket_in(target_ns)
            out.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(out, (target_host, target_port))
            except OSError:
                out.close()
                writer.close()
                return
            up_reader, up_writer = await asyncio.open_connection(sock=out)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        async def serve() -> None:
            self.servers.append(await asyncio.start_server(handle, sock=sock))

        self._call(serve)

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()

        with contextlib.suppress(Exception):
            self._call(stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()
