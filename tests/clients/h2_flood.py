#!/usr/bin/env python3
"""HTTP/2 flood and abuse checks (h2c prior knowledge) against a running server process.

Usage: h2_flood.py HOST:PORT SERVER-PID [SCENARIO ...]

Each scenario attacks on one connection while a probe thread opens a fresh connection every
150 ms and fetches GET / (it must get its answer within 1 s, every time), and samples the
server's resident memory (VmRSS in /proc/PID/status). It checks:

- memory: the peak RSS during the attack is less than 64 MiB above the RSS before it;
- service: every probe was answered within 1 s, and one more right after the attack;
- CPU: once the attacking connection is gone, the server is idle (less than 0.2 s of CPU in
  the following second; CPU time is utime+stime from /proc/PID/stat);
- the scenario's own outcome (below): what the server did to the attacking connection.

Prints one line per scenario,

    PASS flood/<name> :: <numbers>
    FAIL flood/<name> :: <reason> :: <numbers>

and exits 1 if any failed. Scenarios (all by default):

  rapid-reset        HEADERS + RST_STREAM(CANCEL) pairs (CVE-2023-44487), up to 20,000: the
                     server must end the connection with GOAWAY (ENHANCE_YOUR_CALM,
                     PROTOCOL_ERROR, or NO_ERROR when its requests-per-connection cap comes
                     first) before all of them are sent.
  continuation       HEADERS without END_HEADERS, then 16 KiB CONTINUATION frames without end
                     (CVE-2024-27316 pattern): the connection must be closed (GOAWAY or close)
                     before 16 MiB are sent.
  continuation-empty the same with empty CONTINUATION frames.
  settings           SETTINGS frames (each wants an ACK) for 3 s, never reading: the server
                     must stop reading (backpressure) or close; memory stays bounded.
  ping               the same with PING frames.
  zero-window        SETTINGS_INITIAL_WINDOW_SIZE 0 and 100 streams of GET /stream?n=10000
                     (10,000 small body chunks) on each of 3 connections, never a
                     WINDOW_UPDATE, for 3 s: no DATA, bounded memory, idle CPU; then the
                     window of one stream is opened 1 byte at a time (1-byte WINDOW_UPDATEs) for
                     2 s: DATA comes, never more bytes than granted.
  empty-data         a POST whose body is 200,000 empty DATA frames without END_STREAM: the
                     server must close the connection or stay bounded.
  hpack-bomb         one 4 KiB header put in the dynamic table, then referenced by 1-byte
                     indexes 16,000 times per header block (64 MiB decoded), on 20 streams:
                     each request refused (RST_STREAM, a 431 response or GOAWAY) and memory
                     bounded.
  streams            1,000 concurrent GET /sleep?ms=1500 streams on one connection (the
                     server advertises SETTINGS_MAX_CONCURRENT_STREAMS 100): every stream past
                     the advertised limit is refused (RST_STREAM REFUSED_STREAM or
                     PROTOCOL_ERROR, or GOAWAY), no more than the limit are answered 200, and
                     the answered ones complete.
  stream-id-max      a request on stream 2^31-1 is answered; a HEADERS frame on a lower
                     stream afterwards is a connection error (GOAWAY PROTOCOL_ERROR or close).
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2_conformance import (  # noqa: E402
    ACK, CLOSED, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS,
    INITIAL_WINDOW_SIZE, MAX_CONCURRENT_STREAMS, PING, PREFACE, RST_STREAM, SETTINGS,
    WINDOW_UPDATE, CANCEL, ENHANCE_YOUR_CALM, NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM,
    COMPRESSION_ERROR, Conn, Frame, code_name, frame_bytes,
)

MIB = 1024 * 1024
RSS_LIMIT = 64 * MIB
PROBE_LIMIT = 1.0
PROBE_EVERY = 0.15
TICK = os.sysconf("SC_CLK_TCK")


# -- the server process --------------------------------------------------------------------

def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for pid %d" % pid)


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


# -- probing -------------------------------------------------------------------------------

def get(addr, path="/", timeout=PROBE_LIMIT * 2):
    """One GET on a new connection; (status, seconds)."""
    start = time.monotonic()
    c = Conn(addr, timeout=timeout)
    try:
        c.handshake()
        host, port = addr
        block = c.encode([(":method", "GET"), (":scheme", "http"), (":path", path),
                          (":authority", "%s:%d" % (host, port))])
        c.write_headers(1, block, end_stream=True)
        status = None
        while not c.closed:
            ev = c.wait_event()
            if isinstance(ev, Frame) and ev.sid == 1:
                if ev.type == HEADERS and status is None:
                    status = header_status(c, ev)
                if ev.type in (HEADERS, DATA) and ev.has(END_STREAM):
                    return status, time.monotonic() - start
                if ev.type == RST_STREAM:
                    return "RST_STREAM(%s)" % code_name(ev.code), time.monotonic() - start
        return "no answer (%s)" % ev, time.monotonic() - start
    finally:
        c.close()


def header_status(c, frame):
    from hpack import Decoder
    if not hasattr(c, "dec"):
        c.dec = Decoder()
    payload = frame.payload
    if frame.flags & 0x8:
        payload = payload[1:len(payload) - payload[0]]
    if frame.flags & 0x20:
        payload = payload[5:]
    for name, value in c.dec.decode(payload):
        if name in (":status", b":status"):
            return int(value)
    return None


class Probe(threading.Thread):
    """Fetches GET / every PROBE_EVERY seconds and samples the server's RSS."""

    def __init__(self, addr, pid):
        super().__init__(daemon=True)
        self.addr, self.pid = addr, pid
        self.stop = threading.Event()
        self.results = []  # (status, seconds)
        self.peak = rss(pid)

    def sample(self):
        try:
            self.peak = max(self.peak, rss(self.pid))
        except (OSError, RuntimeError):
            pass

    def run(self):
        while not self.stop.is_set():
            self.sample()
            try:
                self.results.append(get(self.addr))
            except OSError as e:
                self.results.append(("error %s" % e, PROBE_LIMIT * 2))
            self.sample()
            self.stop.wait(PROBE_EVERY)


# -- the attacking connection --------------------------------------------------------------

class Attacker:
    def __init__(self, addr):
        self.addr = addr
        self.sock = socket.create_connection(addr, timeout=2)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent = 0
        self.blocked = False  # the server stopped reading
        self.dead = False  # the connection is gone (reset, or the server closed it)

    def send(self, data, block_timeout=1.0):
        """Sends what the server takes within `block_timeout`; False once it takes no more."""
        if self.blocked or self.dead:
            return False
        self.sock.settimeout(block_timeout)
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
            except socket.timeout:
                self.blocked = True
                return False
            except OSError:
                self.dead = True
                return False
            self.sent += n
            view = view[n:]
        return True

    def handshake(self, *settings):
        c = Conn.__new__(Conn)  # reuse the frame reader on this socket
        c.addr, c.timeout, c.sock = self.addr, 3.0, self.sock
        c.buf, c.out, c.closed, c.settings, c.notes = bytearray(), bytearray(), False, {}, []
        c.window_update, c.windows = False, {}
        from hpack import Encoder
        c.enc = Encoder()
        self.conn = c
        self.send(PREFACE + frame_bytes(SETTINGS, 0, 0, b"".join(
            struct.pack(">HI", k, v) for k, v in settings)))
        local = remote = False
        while not (local and remote):
            ev = c.read_frame()
            if not isinstance(ev, Frame):
                raise RuntimeError("handshake failed: %s" % ev)
            if ev.type == SETTINGS:
                if ev.has(ACK):
                    local = True
                else:
                    remote = True
                    for i in range(0, len(ev.payload) - 5, 6):
                        k, v = struct.unpack(">HI", ev.payload[i:i + 6])
                        c.settings[k] = v
                    self.send(frame_bytes(SETTINGS, ACK, 0))
        return c

    def request_block(self, path, method="GET", extra=()):
        host, port = self.addr
        return self.conn.encode([(":method", method), (":scheme", "http"), (":path", path),
                                 (":authority", "%s:%d" % (host, port))] + list(extra))

    def drain(self, seconds=2.0):
        """Reads what the server sent until it closes or `seconds` pass; the frames."""
        frames = []
        c = self.conn
        c.timeout = seconds
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            c.timeout = max(0.05, end - time.monotonic())
            ev = c.read_frame()
            if ev is CLOSED:
                self.dead = True
                break
            if not isinstance(ev, Frame):
                break
            c.closed = False
            frames.append(ev)
        return frames

    def goaway(self, frames):
        for f in frames:
            if f.type == GOAWAY:
                return f
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def outcome(att, frames):
    g = att.goaway(frames)
    if g is not None:
        return "GOAWAY(%s)" % code_name(g.code)
    if att.dead:
        return "closed"
    if att.blocked:
        return "backpressure"
    return "open"


# -- scenarios -------------------------------------------------------------------------------

SCENARIOS = {}


def scenario(name):
    def deco(fn):
        SCENARIOS[name] = fn
        return fn
    return deco


class ScenarioFailed(Exception):
    pass


@scenario("rapid-reset")
def rapid_reset(addr, info):
    att = Attacker(addr)
    att.handshake()
    block = att.request_block("/sleep?ms=2000")
    pairs = 0
    sid = 1
    start = time.monotonic()
    while pairs < 20000 and time.monotonic() - start < 5:
        batch = bytearray()
        for _ in range(100):
            batch += frame_bytes(HEADERS, END_STREAM | END_HEADERS, sid, block)
            batch += frame_bytes(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
            sid += 2
        if not att.send(bytes(batch)):
            break
        pairs += 100
    frames = att.drain(2.0)
    info["pairs_sent"] = pairs
    info["outcome"] = outcome(att, frames)
    att.close()
    g = att.goaway(frames)
    if g is None or g.code not in (ENHANCE_YOUR_CALM, PROTOCOL_ERROR, NO_ERROR):
        raise ScenarioFailed("expected GOAWAY(ENHANCE_YOUR_CALM, PROTOCOL_ERROR or NO_ERROR); "
                             "got %s after %d pairs" % (info["outcome"], pairs))
    if pairs >= 20000 and not att.dead:
        raise ScenarioFailed("all 20,000 pairs were taken")


def continuation_flood(addr, info, chunk):
    att = Attacker(addr)
    att.handshake()
    block = att.request_block("/")
    att.send(frame_bytes(HEADERS, END_STREAM, 1, block))  # no END_HEADERS
    frame = frame_bytes(CONTINUATION, 0, 1, chunk)
    batch = frame * max(1, 65536 // len(frame))
    limit = 16 * MIB
    start = time.monotonic()
    while att.sent < limit and time.monotonic() - start < 5:
        if not att.send(batch):
            break
    frames = att.drain(2.0)
    info["sent_bytes"] = att.sent
    info["outcome"] = outcome(att, frames)
    att.close()
    if not (att.dead or att.goaway(frames)):
        raise ScenarioFailed("connection still open after %d bytes of CONTINUATION (%s)"
                             % (att.sent, info["outcome"]))
    if att.sent >= limit:
        raise ScenarioFailed("the server took all %d bytes" % att.sent)


@scenario("continuation")
def continuation(addr, info):
    # literal header field without indexing, new name: x-a: 16,370 bytes of 'a' (no Huffman)
    value = b"a" * 16370
    rep = b"\x00\x03x-a" + b"\x7f" + encode_int(len(value) - 127) + value
    continuation_flood(addr, info, rep[:16384])


@scenario("continuation-empty")
def continuation_empty(addr, info):
    continuation_flood(addr, info, b"")


def encode_int(v):
    out = bytearray()
    while v >= 128:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    out.append(v)
    return bytes(out)


def unread_flood(addr, info, frame):
    att = Attacker(addr)
    att.handshake()
    batch = frame * (65536 // len(frame))
    frames_sent = 0
    start = time.monotonic()
    while time.monotonic() - start < 3:
        if not att.send(batch, block_timeout=0.5):
            break
        frames_sent += len(batch) // len(frame)
    # keep the connection unread a little longer: nothing may pile up meanwhile
    time.sleep(max(0.0, 3 - (time.monotonic() - start)))
    info["frames_sent"] = frames_sent
    info["sent_bytes"] = att.sent
    info["outcome"] = "backpressure" if att.blocked else ("closed" if att.dead else "open")
    att.close()
    if not (att.blocked or att.dead):
        raise ScenarioFailed("the server kept reading %d frames for 3 s while its answers "
                             "went unread" % frames_sent)


@scenario("settings")
def settings_flood(addr, info):
    unread_flood(addr, info, frame_bytes(SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100)))


@scenario("ping")
def ping_flood(addr, info):
    unread_flood(addr, info, frame_bytes(PING, 0, 0, b"flooding"))


@scenario("zero-window")
def zero_window(addr, info):
    # Three connections (an attacker has many), 100 streams each, 10,000 small chunks per
    # response: a server that makes the app wait for window holds next to nothing.
    others = []
    for k in range(3):
        att = Attacker(addr)
        c = att.handshake((INITIAL_WINDOW_SIZE, 0))
        limit = c.settings.get(MAX_CONCURRENT_STREAMS, 100)
        block = att.request_block("/stream?n=10000")
        n = min(limit, 100)
        att.send(b"".join(frame_bytes(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, block)
                          for i in range(n)))
        others.append(att)
    time.sleep(3)
    for a in others:
        data = [f for f in a.drain(0.3) if f.type == DATA and f.payload]
        if data:
            raise ScenarioFailed("DATA sent into a zero window: %s" % data[0])
    for a in others[1:]:
        a.close()
    att = others[0]
    # open the window of stream 1 (and the connection) one byte at a time
    granted = got = 0
    start = time.monotonic()
    while time.monotonic() - start < 2 and not att.dead:
        att.send(frame_bytes(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1))
                 + frame_bytes(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)))
        granted += 1
        for f in att.drain(0.01):
            if f.type == DATA and f.sid == 1:
                got += len(f.payload)
            if f.type == GOAWAY:
                att.dead = True
    info["streams"] = 3 * n
    info["window_updates"] = granted
    info["dribbled_bytes"] = got
    info["outcome"] = "open" if not att.dead else "closed"
    att.close()
    if got > granted:
        raise ScenarioFailed("%d bytes sent for %d bytes of window" % (got, granted))
    if got == 0 and not att.dead:
        raise ScenarioFailed("no DATA at all for %d 1-byte window updates" % granted)


@scenario("empty-data")
def empty_data(addr, info):
    att = Attacker(addr)
    att.handshake()
    att.send(frame_bytes(HEADERS, END_HEADERS, 1, att.request_block("/sleep?ms=5000", "POST")))
    frame = frame_bytes(DATA, 0, 1, b"")
    batch = frame * 5000
    sent = 0
    start = time.monotonic()
    while sent < 200000 and time.monotonic() - start < 5:
        if not att.send(batch):
            break
        sent += 5000
    frames = att.drain(1.0)
    info["empty_frames_sent"] = sent
    info["outcome"] = outcome(att, frames)
    att.close()


@scenario("hpack-bomb")
def hpack_bomb(addr, info):
    att = Attacker(addr)
    att.handshake()
    host, port = addr
    # :authority etc. without indexing, then x-bomb (4,000 bytes) with incremental indexing:
    # it becomes dynamic entry 62; 0xbe refers to it.
    def lit(name, value):
        return b"\x00" + bytes([len(name)]) + name + b"\x7f" + encode_int(len(value) - 127) \
            + value if len(value) >= 127 else b"\x00" + bytes([len(name)]) + name \
            + bytes([len(value)]) + value
    refs = b"\xbe" * 16000
    answers = {}
    streams = 20
    for i in range(streams):
        sid = 1 + 2 * i
        head = (lit(b":method", b"GET") + lit(b":scheme", b"http") + lit(b":path", b"/")
                + lit(b":authority", ("%s:%d" % (host, port)).encode()))
        if i == 0:
            head += b"\x40\x06x-bomb\x7f" + encode_int(4000 - 127) + b"b" * 4000
        blk = head + refs
        frames = frame_bytes(HEADERS, END_STREAM, sid, blk[:16000])
        rest = blk[16000:]
        while rest:
            part, rest = rest[:16000], rest[16000:]
            frames += frame_bytes(CONTINUATION, 0 if rest else END_HEADERS, sid, part)
        if not att.send(frames):
            break
        for f in att.drain(0.3):
            if f.type == RST_STREAM:
                answers[f.sid] = "RST_STREAM(%s)" % code_name(f.code)
            elif f.type == HEADERS:
                answers[f.sid] = "HEADERS %s" % header_status(att.conn, f)
            elif f.type == GOAWAY:
                answers[0] = "GOAWAY(%s)" % code_name(f.code)
                att.dead = True
        if att.dead:
            break
    info["answers"] = sorted(set(answers.values()))
    info["outcome"] = answers.get(0, "closed" if att.dead else "open")
    att.close()
    accepted = [a for a in answers.values() if a.startswith("HEADERS") and "431" not in a]
    if accepted:
        raise ScenarioFailed("a 64 MiB header list was accepted: %s" % accepted[0])
    if not answers and not att.dead:
        raise ScenarioFailed("no answer to the header blocks")


@scenario("streams")
def too_many_streams(addr, info):
    att = Attacker(addr)
    c = att.handshake()
    limit = c.settings.get(MAX_CONCURRENT_STREAMS)
    if limit is None:
        raise ScenarioFailed("no SETTINGS_MAX_CONCURRENT_STREAMS advertised (unlimited)")
    block = att.request_block("/sleep?ms=1500")
    total = 1000
    att.send(b"".join(frame_bytes(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, block)
                      for i in range(total)))
    refused, answered, ended, other = set(), set(), set(), []
    goaway = None
    end = time.monotonic() + 6
    c.window_update = True
    c.windows = {0: 65535}
    while time.monotonic() < end and not att.dead and len(ended) + len(refused) < total:
        for f in att.drain(0.2):
            if f.type == RST_STREAM:
                if f.code in (REFUSED_STREAM, PROTOCOL_ERROR):
                    refused.add(f.sid)
                else:
                    other.append(str(f))
            elif f.type == HEADERS:
                st = header_status(c, f)
                if st == 200:
                    answered.add(f.sid)
                else:
                    other.append("HEADERS %s" % st)
                if f.has(END_STREAM):
                    ended.add(f.sid)
            elif f.type == DATA and f.has(END_STREAM):
                ended.add(f.sid)
            elif f.type == GOAWAY:
                goaway = f
        if goaway is not None:
            break
    info["limit"] = limit
    info["refused"] = len(refused)
    info["answered_200"] = len(answered)
    info["completed"] = len(ended)
    info["outcome"] = "GOAWAY(%s)" % code_name(goaway.code) if goaway else (
        "closed" if att.dead else "open")
    att.close()
    if other:
        raise ScenarioFailed("unexpected answers: %s" % other[:3])
    if len(answered) > limit:
        raise ScenarioFailed("%d streams answered, more than the limit %d"
                             % (len(answered), limit))
    if goaway is None and len(refused) < total - limit:
        raise ScenarioFailed("only %d of the %d streams past the limit were refused"
                             % (len(refused), total - limit))
    if answered - ended:
        raise ScenarioFailed("%d answered streams did not complete" % len(answered - ended))
    if not answered:
        raise ScenarioFailed("no stream was served at all")


@scenario("stream-id-max")
def stream_id_max(addr, info):
    att = Attacker(addr)
    c = att.handshake()
    top = 2**31 - 1
    att.send(frame_bytes(HEADERS, END_STREAM | END_HEADERS, top, att.request_block("/")))
    frames = att.drain(1.0)
    got = [f for f in frames if f.sid == top and f.type == HEADERS]
    if not got or header_status(c, got[0]) != 200:
        raise ScenarioFailed("no 200 on stream 2^31-1: %s" % [str(f) for f in frames[:3]])
    att.send(frame_bytes(HEADERS, END_STREAM | END_HEADERS, 1, att.request_block("/")))
    frames = att.drain(2.0)
    g = att.goaway(frames)
    info["outcome"] = outcome(att, frames)
    att.close()
    if g is not None and g.code != PROTOCOL_ERROR:
        raise ScenarioFailed("expected GOAWAY(PROTOCOL_ERROR); got %s" % g)
    if g is None and not att.dead:
        raise ScenarioFailed("a HEADERS frame on stream 1 after 2^31-1 was taken: %s"
                             % [str(f) for f in frames[:3]])


# -- runner -------------------------------------------------------------------------------------

def run_one(name, fn, addr, pid):
    info = {}
    base_rss, base_cpu = rss(pid), cpu(pid)
    probe = Probe(addr, pid)
    probe.start()
    t0 = time.monotonic()
    reason = None
    try:
        fn(addr, info)
    except ScenarioFailed as e:
        reason = str(e)
    except Exception as e:  # noqa: BLE001 - a client bug fails the scenario, visibly
        reason = "client error %r" % (e,)
    attack_s = time.monotonic() - t0
    # short attacks: let the probe finish at least three requests on the shaken server
    wait_end = time.monotonic() + 3
    while len(probe.results) < 3 and time.monotonic() < wait_end:
        time.sleep(0.05)
    probe.stop.set()
    probe.join(5)
    attack_cpu = cpu(pid) - base_cpu
    # The attacker is gone: the server must go quiet and still answer.
    time.sleep(0.3)
    c0 = cpu(pid)
    time.sleep(1.0)
    idle_cpu = cpu(pid) - c0
    try:
        after = get(addr)
    except OSError as e:
        after = ("error %s" % e, 0)
    end_rss = rss(pid)
    probe.sample()
    growth = probe.peak - base_rss
    lat = [s for _, s in probe.results]
    bad = [(st, s) for st, s in probe.results if st != 200 or s > PROBE_LIMIT]
    numbers = ("rss_base=%.1fMiB peak=+%.1fMiB end=+%.1fMiB cpu=%.2fs/%.1fs idle_after=%.2fs "
               "probes=%d max=%.0fms %s" % (
                   base_rss / MIB, growth / MIB, (end_rss - base_rss) / MIB, attack_cpu,
                   attack_s, idle_cpu, len(lat), 1000 * max(lat or [0]),
                   " ".join("%s=%s" % kv for kv in info.items())))
    if reason is None and growth >= RSS_LIMIT:
        reason = "RSS grew by %.1f MiB (limit 64 MiB)" % (growth / MIB)
    if reason is None and bad:
        reason = "%d probes failed or were slow, first: %s in %.0f ms" % (
            len(bad), bad[0][0], 1000 * bad[0][1])
    if reason is None and not lat:
        reason = "no probe ran"
    if reason is None and after[0] != 200:
        reason = "GET / after the attack: %s" % (after[0],)
    if reason is None and idle_cpu >= 0.2:
        reason = "the server used %.2f s of CPU in the second after the attack" % idle_cpu
    if reason is None:
        print("PASS flood/%s :: %s" % (name, numbers), flush=True)
        return True
    print("FAIL flood/%s :: %s :: %s" % (name, reason, numbers), flush=True)
    return False


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    host, _, port = sys.argv[1].rpartition(":")
    addr = (host, int(port))
    pid = int(sys.argv[2])
    # zero-window last: the memory it makes the server take stays in its allocator and would
    # hide the growth of the scenarios after it.
    names = sys.argv[3:] or sorted(SCENARIOS, key=lambda n: n == "zero-window")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print("unknown scenarios: %s" % unknown, file=sys.stderr)
        sys.exit(2)
    ok = True
    for name in names:
        ok &= run_one(name, SCENARIOS[name], addr, pid)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
