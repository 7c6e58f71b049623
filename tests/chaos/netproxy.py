#!/usr/bin/python3
"""A userspace network between raft nodes: one TCP proxy in front of every node's raft port.

Every node advertises its proxy's address as its raft address, so every raft connection a node
opens to another goes through the proxy of the destination. The proxy learns which node opened
the connection from the first bytes of the stream (canonical raft's handshake: u64 protocol,
u64 server id, little-endian; the authenticated transport's HELLO: "CMRAFT01", u64 id,
big-endian), so it can treat every direction of every link on its own:

  pass    forward
  delay   forward each chunk `delay_ms` (+ up to `jitter_ms`) later, in order
  drop    a black hole: read and discard, keep the connection open (a silent partition: the
          sender notices only through its own timeouts)
  cut     close the connections of the link and every new one (a loud partition: resets)

A canonical raft connection carries messages one way (a node sends on the connections it opened
and receives on those it accepted); bytes coming back on a connection follow the rule of the
opposite direction. Leaving `drop` closes the link's connections, since bytes were lost in the
middle of a stream.

Run as a child process: `netproxy.py DST=LISTEN_IP:PORT=TARGET_IP:PORT ...`; it prints "ready"
once listening, then reads one JSON command per line on stdin and answers one JSON line:

  {"cmd":"set","src":1,"dst":2,"mode":"drop"}           one direction of one link
  {"cmd":"set","src":1,"dst":2,"mode":"delay","delay_ms":80,"jitter_ms":40}
  {"cmd":"heal"}                                         every link back to pass
  {"cmd":"stats"}                                        connections and bytes per link
"""
import asyncio
import json
import random
import struct
import sys

HELLO_LEN = 16


class Link:
    __slots__ = ("mode", "delay_ms", "jitter_ms", "bytes", "dropped", "conns")

    def __init__(self):
        self.mode, self.delay_ms, self.jitter_ms = "pass", 0, 0
        self.bytes = self.dropped = self.conns = 0


class Conn:
    def __init__(self, proxy, src, dst, creader, cwriter):
        self.proxy, self.src, self.dst = proxy, src, dst
        self.creader, self.cwriter = creader, cwriter
        self.ureader = self.uwriter = None
        self.tasks = []
        self.closed = False

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.proxy.conns.discard(self)
        for w in (self.cwriter, self.uwriter):
            if w is not None:
                try:
                    w.transport.abort()
                except Exception:
                    pass
        for t in self.tasks:
            if t is not asyncio.current_task():
                t.cancel()

    async def pump(self, reader, writer, src, dst):
        """Copy reader -> writer under the rule of link src->dst."""
        link = self.proxy.link(src, dst)
        queue = asyncio.Queue()
        sender = asyncio.ensure_future(self.delayed_writer(queue, writer))
        self.tasks.append(sender)
        try:
            while not self.closed:
                data = await reader.read(65536)
                if not data:
                    break
                mode = link.mode
                if mode == "cut":
                    break
                if mode == "drop":
                    link.dropped += len(data)
                    continue
                link.bytes += len(data)
                if mode == "delay":
                    due = asyncio.get_running_loop().time() + \
                        (link.delay_ms + random.random() * link.jitter_ms) / 1000.0
                    await queue.put((due, data))
                else:
                    await queue.put((0, data))
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            await queue.put(None)
        try:
            await sender
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        self.close()

    async def delayed_writer(self, queue, writer):
        loop = asyncio.get_running_loop()
        last_due = 0
        while True:
            item = await queue.get()
            if item is None:
                return
            due, data = item
            due = max(due, last_due)  # never reorder bytes of a stream
            last_due = due
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()


class Proxy:
    def __init__(self, routes):
        self.routes = routes  # dst -> (listen_host, listen_port, target_host, target_port)
        self.links = {}
        self.conns = set()
        self.servers = []

    def link(self, src, dst):
        k = (src, dst)
        if k not in self.links:
            self.links[k] = Link()
        return self.links[k]

    async def start(self):
        for dst, (lh, lp, th, tp) in self.routes.items():
            srv = await asyncio.start_server(
                lambda r, w, dst=dst: self.accept(dst, r, w), lh, lp, reuse_address=True)
            self.servers.append(srv)

    async def accept(self, dst, reader, writer):
        try:
            hello = await asyncio.wait_for(reader.readexactly(HELLO_LEN), 30)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, OSError):
            writer.transport.abort()
            return
        if hello[:8] == b"CMRAFT01":
            src = struct.unpack(">Q", hello[8:16])[0]
        else:
            src = struct.unpack("<Q", hello[8:16])[0]
        link = self.link(src, dst)
        conn = Conn(self, src, dst, reader, writer)
        if link.mode == "cut":
            conn.close()
            return
        self.conns.add(conn)
        link.conns += 1
        if link.mode == "drop":  # black hole: never reach the destination
            conn.tasks.append(asyncio.current_task())
            try:
                while not conn.closed:
                    data = await reader.read(65536)
                    if not data:
                        break
                    link.dropped += len(data)
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass
            conn.close()
            return
        _, _, th, tp = self.routes[dst]
        try:
            conn.ureader, conn.uwriter = await asyncio.wait_for(
                asyncio.open_connection(th, tp), 5)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            conn.close()
            return
        conn.uwriter.write(hello)
        a = asyncio.ensure_future(conn.pump(reader, conn.uwriter, src, dst))
        b = asyncio.ensure_future(conn.pump(conn.ureader, writer, dst, src))
        conn.tasks += [a, b]

    def set(self, src, dst, mode, delay_ms=0, jitter_ms=0):
        link = self.link(src, dst)
        old = link.mode
        link.mode, link.delay_ms, link.jitter_ms = mode, delay_ms, jitter_ms
        if mode == "cut" or (old == "drop" and mode != "drop"):
            for c in list(self.conns):
                if (c.src, c.dst) in ((src, dst), (dst, src)):
                    c.close()

    def heal(self):
        for (s, d), link in list(self.links.items()):
            if link.mode != "pass":
                self.set(s, d, "pass")

    def stats(self):
        return {f"{s}->{d}": {"mode": l.mode, "bytes": l.bytes, "dropped": l.dropped,
                              "conns": l.conns}
                for (s, d), l in sorted(self.links.items())}

    async def control(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            try:
                c = json.loads(line)
                out = {"ok": True}
                if c["cmd"] == "set":
                    self.set(int(c["src"]), int(c["dst"]), c["mode"], c.get("delay_ms", 0),
                             c.get("jitter_ms", 0))
                elif c["cmd"] == "heal":
                    self.heal()
                elif c["cmd"] == "stats":
                    out["links"] = self.stats()
                else:
                    out = {"ok": False, "error": "unknown command"}
            except Exception as e:  # a bad command must not kill the network
                out = {"ok": False, "error": repr(e)}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()


async def main(argv):
    routes = {}
    for a in argv:
        dst, listen, target = a.split("=")
        lh, lp = listen.rsplit(":", 1)
        th, tp = target.rsplit(":", 1)
        routes[int(dst)] = (lh, int(lp), th, int(tp))
    p = Proxy(routes)
    await p.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await p.control()
    for c in list(p.conns):
        c.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
