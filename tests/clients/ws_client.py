#!/usr/bin/env python3
"""WebSocket checks with the `websockets` library against pagi-server's demo app (which echoes
every message and accepts the first offered subprotocol).

Usage: ws_client.py SCENARIO URL

Scenarios:
  echo        permessage-deflate and subprotocol negotiation, text/binary/empty/large echoes,
              compressed frames both ways, close with 4001 echoed.
  ping        lone client pings are answered (pong with the same payload).
  ping-busy   client pings each followed by a message are answered.
  keepalive   the server pings (every 100 ms); the library answers; the connection stays up.

Prints "OK <scenario>" and exits 0 on success; an assertion error otherwise (exit 1).
"""

import asyncio
import os
import sys

from websockets.asyncio.client import connect

TIMEOUT = 5
# What the server answers to the offers of the websockets versions we know.
PMD_ANSWERS = {
    # websockets 14 and later
    "permessage-deflate; client_max_window_bits": "permessage-deflate",
    # older versions
    "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12": (
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    ),
}


def opts(**kw):
    base = dict(
        proxy=None,  # never route through an HTTP proxy from the environment
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        ping_interval=None,
        compression=None,
        max_size=32 * 2**20,
    )
    base.update(kw)
    return base


def record_rsv1(ws):
    """Wraps the permessage-deflate decoder to record the RSV1 bit of every received frame."""
    [pmd] = ws.protocol.extensions
    seen = []
    orig = pmd.decode

    def decode(frame, *args, **kwargs):
        seen.append((frame.rsv1, len(frame.data)))
        return orig(frame, *args, **kwargs)

    pmd.decode = decode
    return seen


async def roundtrip(ws, msg):
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert type(got) is type(msg), (type(got), type(msg))
    assert got == msg, f"echo of a {len(msg)}-long {type(msg).__name__} differs"


async def echo(url):
    async with connect(
        url, **opts(compression="deflate", subprotocols=["chat.v2", "chat.v1"])
    ) as ws:
        assert ws.subprotocol == "chat.v2", ws.subprotocol
        offered = ws.request.headers["Sec-WebSocket-Extensions"]
        answer = ws.response.headers["Sec-WebSocket-Extensions"]
        want = PMD_ANSWERS.get(offered)
        if want is not None:
            assert answer == want, (offered, answer)
        else:
            assert answer.startswith("permessage-deflate"), (offered, answer)
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat.v2"
        seen = record_rsv1(ws)
        messages = [
            "hello",
            "héllo wörld ✓ 😀",
            "",
            b"",
            b"\x00\xff" * 10,
            "x" * 100_000,
            "json " * 200_000,
            os.urandom(1 << 20),
            bytes(4 << 20),
        ]
        for msg in messages:
            await roundtrip(ws, msg)
        # Messages under 16 bytes come back uncompressed, the others compressed.
        def size(m):
            return len(m.encode() if isinstance(m, str) else m)

        rsv1 = [bit for bit, _ in seen[: len(messages)]]
        assert rsv1 == [size(m) >= 16 for m in messages], seen
        assert seen[5][1] < 1000, seen  # 100,000 x's
        await ws.close(code=4001, reason="bye")
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None and (rcvd.code, rcvd.reason) == (4001, ""), rcvd
        assert ws.close_code == 4001, ws.close_code
    print("OK echo")


async def ping(url, busy):
    async with connect(url, **opts()) as ws:
        for payload in [b"", b"abc", bytes(range(125))]:
            waiter = await ws.ping(payload)
            if busy:
                await ws.send("after the ping")
            await asyncio.wait_for(waiter, TIMEOUT)
            if busy:
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "after the ping"
        await roundtrip(ws, "still open")
    print("OK ping-busy" if busy else "OK ping")


async def keepalive(url):
    async with connect(url, **opts()) as ws:
        # The server pings every 100 ms and drops a client that does not answer within 300 ms;
        # the library answers in the background.
        await asyncio.sleep(1.0)
        await roundtrip(ws, "still here")
        await ws.close()
        assert ws.protocol.close_rcvd.code == 1000, ws.protocol.close_rcvd
    print("OK keepalive")


def main():
    scenario, url = sys.argv[1], sys.argv[2]
    run = {
        "echo": lambda: echo(url),
        "ping": lambda: ping(url, busy=False),
        "ping-busy": lambda: ping(url, busy=True),
        "keepalive": lambda: keepalive(url),
    }[scenario]
    asyncio.run(asyncio.wait_for(run(), 30))


if __name__ == "__main__":
    main()
