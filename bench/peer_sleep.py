#!/usr/bin/env python3
"""Workload 4's peer: N concurrent sleeps gathered in asyncio.

    peer_sleep.py N SECONDS
"""
import asyncio
import sys


async def main(n, secs):
    await asyncio.gather(*(asyncio.sleep(secs) for _ in range(n)))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
