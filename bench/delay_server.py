#!/usr/bin/env python3
"""Fallback 50 ms latency server for scripts/bench, used only when nginx's
echo module (Debian libnginx-mod-http-echo, which gives `echo_sleep`) is
missing: nginx then proxies /delay/N.json here over kept-alive upstream
connections, and /slow/N.json likewise after SLOW seconds.

A minimal HTTP/1.1 keep-alive server on asyncio: each request is answered
with the fixture document after DELAY seconds, concurrently (one coroutine
per connection, the sleep does not block the others). Usage:

    delay_server.py PORT [DELAY_SECONDS [SLOW_SECONDS]]

It exits when its parent closes its stdin, so it never outlives the bench.
"""
import asyncio
import re
import sys

PATH_RE = re.compile(rb"^GET /(delay|slow)/(\d+)\.json ")


async def handle(reader, writer, delay, slow):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            m = PATH_RE.match(head)
            await asyncio.sleep(slow if m and m.group(1) == b"slow" else delay)
            if m:
                n = m.group(2)
                body = (b'{"id":' + n + b',"type":"story","by":"bench","title":"Fixture item '
                        + n + b'","score":42,"descendants":3,"kids":[101,102,103]}')
                status = b"200 OK"
            else:
                body, status = b'{"error":"not found"}', b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    port = int(sys.argv[1])
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
    slow = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay, slow), "127.0.0.1", port,
                                        backlog=4096)
    loop = asyncio.get_running_loop()
    # Stop when the parent goes away (stdin reaches EOF).
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
