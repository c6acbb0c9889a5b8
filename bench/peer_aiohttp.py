#!/usr/bin/env python3
"""The program users write today, as the peer for the HTTP workloads of
scripts/bench: asyncio + aiohttp, one shared ClientSession, every body
decoded as JSON and checked (the same check as the pacer workflows'
`expect.that`: the document's id is the item), and every decoded document
kept, as `asyncio.gather` returns them.

    peer_aiohttp.py BASE_URL PATH_PREFIX N CONCURRENCY [CAFILE] [--limit L] [--read]

fetches BASE_URL + PATH_PREFIX + i + ".json" for i in 1..N.

  CONCURRENCY  > 0: a semaphore of that size around each request, and the
               connector's limit set to the same (workloads 1-3, 8-10);
               0: no semaphore, every coroutine handed to gather at once
               (workloads 6, 7, 11, 12), the connector's limit left at
               aiohttp's default (100) unless --limit says otherwise
  --limit L    the connector's connection limit (0: no limit)
  --read       after the gather, read every kept document again (sum of
               the "score" fields, checked against 42 * N), as the later
               step of the pacer workflow does

Exits 0 when all N documents were fetched and checked; prints a one-line
summary on stderr.
"""
import argparse
import asyncio
import ssl
import sys

import aiohttp


async def fetch(session, sem, url, i):
    if sem is None:
        return await fetch_one(session, url, i)
    async with sem:
        return await fetch_one(session, url, i)


async def fetch_one(session, url, i):
    async with session.get(url) as resp:
        resp.raise_for_status()
        doc = await resp.json()
        if doc.get("id") != i:
            raise ValueError(f"{url}: id {doc.get('id')!r} != {i}")
        return doc


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("prefix")
    ap.add_argument("n", type=int)
    ap.add_argument("concurrency", type=int)
    ap.add_argument("cafile", nargs="?")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--read", action="store_true")
    a = ap.parse_args()
    ssl_ctx = ssl.create_default_context(cafile=a.cafile) if a.cafile else None
    sem = asyncio.Semaphore(a.concurrency) if a.concurrency > 0 else None
    limit = a.limit if a.limit is not None else (a.concurrency if a.concurrency > 0 else 100)
    connector = aiohttp.TCPConnector(limit=limit, ssl=ssl_ctx)
    async with aiohttp.ClientSession(connector=connector) as session:
        docs = await asyncio.gather(*(fetch(session, sem, f"{a.base}{a.prefix}{i}.json", i)
                                      for i in range(1, a.n + 1)))
    if a.read:
        total = sum(d["score"] for d in docs)
        if total != 42 * a.n:
            raise SystemExit(f"aiohttp: sum of scores {total} != {42 * a.n}")
    print(f"aiohttp: {len(docs)} documents checked", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
