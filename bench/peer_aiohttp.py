#!/usr/bin/env python3
"""The program users write today, as the peer for workloads 1-3 of
scripts/bench: asyncio + aiohttp, one shared ClientSession, a semaphore for
the concurrency, and every body decoded as JSON and checked (the same check
as the pacer workflows' `expect.that`: the document's id is the item).

    peer_aiohttp.py BASE_URL PATH_PREFIX N CONCURRENCY [CAFILE]

fetches BASE_URL + PATH_PREFIX + i + ".json" for i in 1..N. Exits 0 when all
N documents were fetched and checked; prints a one-line summary on stderr.
"""
import asyncio
import ssl
import sys

import aiohttp


async def fetch(session, sem, url, i):
    async with sem:
        async with session.get(url) as resp:
            resp.raise_for_status()
            doc = await resp.json()
            if doc.get("id") != i:
                raise ValueError(f"{url}: id {doc.get('id')!r} != {i}")
            return doc


async def main():
    base, prefix, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ssl_ctx = None
    if len(sys.argv) > 5:
        ssl_ctx = ssl.create_default_context(cafile=sys.argv[5])
    sem = asyncio.Semaphore(conc)
    connector = aiohttp.TCPConnector(limit=conc, ssl=ssl_ctx)
    async with aiohttp.ClientSession(connector=connector) as session:
        docs = await asyncio.gather(*(fetch(session, sem, f"{base}{prefix}{i}.json", i)
                                      for i in range(1, n + 1)))
    print(f"aiohttp: {len(docs)} documents checked", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
