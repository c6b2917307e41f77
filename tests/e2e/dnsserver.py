# SPDX-License-Identifier: MIT
"""A scriptable authoritative DNS server for the e2e tests.

UDP and TCP on the same free port of 127.0.0.1, served by background
threads of the pytest process (dnslib only packs and parses):

  dns = DnsServer().start()        dns.port, dns.address ("127.0.0.1:PORT")
  dns.add("2.0.0.127.bl.test", "A", "127.0.0.2", ttl=300)
                                   A, AAAA, PTR, TXT, CNAME, NS, MX ("10 mx.x")
  dns.nxdomain(name)               NXDOMAIN + SOA (also what unknown names get)
  dns.nodata(name)                 NOERROR, no answer, SOA in authority
  dns.servfail(name)               SERVFAIL
  dns.drop(name)                   never answer (the query is still logged)
  dns.delay(name, seconds)         answer normally, that much later
  dns.queries                      [(qname, qtype)], qname lower-cased without
                                   the trailing dot, qtype e.g. "A"
  dns.count(name, qtype=None)      how many queries for name (and type)
  dns.clear_log()
  dns.stop()

Names are case-insensitive, the trailing dot optional.  A behaviour set
with nxdomain/nodata/servfail/drop/delay wins over records of the name;
add() clears it.  Answers carry AA (and RA when the query had RD: the
daemon's resolver uses this server as a forwarder), echo the question as
received, and echo EDNS0 when the query had it.  A name with records of
another type gets NODATA; a CNAME is followed through this server's own
records.  Negative answers carry the SOA of the longest zone given with
zone() that holds the name, else of the name's last two labels, with
TTL and minimum `neg_ttl` (300 by default), so resolvers cache them.
A UDP answer larger than the query allows (512, or its EDNS size) is sent
truncated (TC, no records) and the client retries over TCP.
"""

import select
import socket
import struct
import threading
import time

from dnslib import (AAAA, CNAME, DNSHeader, DNSRecord, EDNS0, MX, NS, PTR, QTYPE,
                    RCODE, RR, SOA, TXT, A)

_RDATA = {
    "A": A,
    "AAAA": AAAA,
    "PTR": PTR,
    "TXT": TXT,
    "CNAME": CNAME,
    "NS": NS,
}

_BEHAVIOURS = ("nxdomain", "nodata", "servfail", "drop")


def _norm(name):
    name = str(name).strip().lower()
    if name.endswith("."):
        name = name[:-1]
    return name


def _rdata(rtype, value):
    if rtype == "MX":
        if isinstance(value, (tuple, list)):
            pref, host = value
        else:
            pref, host = str(value).split(None, 1)
        return MX(host, int(pref))
    if rtype not in _RDATA:
        raise ValueError("DnsServer: record type %r not supported" % rtype)
    return _RDATA[rtype](value)


class DnsServer:
    def __init__(self, host="127.0.0.1", neg_ttl=300):
        self.host = host
        self.neg_ttl = neg_ttl
        self.port = None
        self.queries = []
        self._records = {}  # name -> [(rtype str, ttl, rdata)]
        self._behaviour = {}  # name -> "nxdomain" | "nodata" | "servfail" | "drop"
        self._delay = {}  # name -> seconds
        self._zones = set()
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._udp = None
        self._tcp = None
        self._threads = []
        self._conns = set()
        self._timers = set()

    # -- scripting ---------------------------------------------------------

    def add(self, name, rtype, value, ttl=300):
        rtype = rtype.upper()
        rd = _rdata(rtype, value)
        n = _norm(name)
        with self._lock:
            self._records.setdefault(n, []).append((rtype, int(ttl), rd))
            self._behaviour.pop(n, None)
        return self

    def remove(self, name):
        """Forget every record and behaviour of name (it is NXDOMAIN again)."""
        n = _norm(name)
        with self._lock:
            self._records.pop(n, None)
            self._behaviour.pop(n, None)
            self._delay.pop(n, None)
        return self

    def zone(self, name):
        """Declare a zone apex (the owner of the SOA in negative answers)."""
        with self._lock:
            self._zones.add(_norm(name))
        return self

    def _set(self, name, what):
        with self._lock:
            self._behaviour[_norm(name)] = what
        return self

    def nxdomain(self, name):
        return self._set(name, "nxdomain")

    def nodata(self, name):
        return self._set(name, "nodata")

    def servfail(self, name):
        return self._set(name, "servfail")

    def drop(self, name):
        return self._set(name, "drop")

    def delay(self, name, seconds):
        with self._lock:
            self._delay[_norm(name)] = float(seconds)
        return self

    # -- the query log -----------------------------------------------------

    def count(self, name, qtype=None):
        n = _norm(name)
        qt = qtype.upper() if qtype else None
        with self._lock:
            return sum(1 for q, t in self.queries if q == n and (qt is None or t == qt))

    def clear_log(self):
        with self._lock:
            self.queries.clear()

    def wait_query(self, name, qtype=None, count=1, timeout=10.0):
        """Bounded wait until name (and qtype) was asked `count` times."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                n = _norm(name)
                qt = qtype.upper() if qtype else None
                got = sum(1 for q, t in self.queries if q == n and (qt is None or t == qt))
                if got >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        "dns: %d of %d queries for %s %s after %.1fs; log=%r"
                        % (got, count, name, qtype or "*", timeout, self.queries)
                    )
                self._lock.wait(min(left, 0.2))

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    # -- answering ---------------------------------------------------------

    def _soa(self, qname):
        labels = qname.split(".") if qname else []
        best = None
        for z in self._zones:
            if qname == z or qname.endswith("." + z) or z == "":
                if best is None or len(z) > len(best):
                    best = z
        if best is None:
            best = ".".join(labels[-2:])
        owner = (best + ".") if best else "."
        return RR(
            owner,
            QTYPE.SOA,
            ttl=self.neg_ttl,
            rdata=SOA(
                "ns." + owner if best else "ns.",
                "hostmaster." + owner if best else "hostmaster.",
                (1, 3600, 600, 86400, self.neg_ttl),
            ),
        )

    def _answer(self, req):
        """-> (reply DNSRecord or None to drop, delay seconds)."""
        q = req.q
        qname = _norm(q.qname)
        qtype = QTYPE.get(q.qtype, str(q.qtype))
        with self._lock:
            self.queries.append((qname, qtype))
            self._lock.notify_all()
            behaviour = self._behaviour.get(qname)
            delay = self._delay.get(qname, 0.0)
            records = {k: list(v) for k, v in self._records.items()}
            behaviours = dict(self._behaviour)
        if behaviour == "drop":
            return None, 0.0
        reply = DNSRecord(
            DNSHeader(id=req.header.id, qr=1, aa=1, ra=req.header.rd, rd=req.header.rd,
                      opcode=req.header.opcode),
            q=q,
        )
        if req.header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP
        elif behaviour == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
            reply.header.aa = 0
        elif behaviour == "nxdomain":
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self._soa(qname))
        elif behaviour == "nodata":
            reply.add_auth(self._soa(qname))
        else:
            self._resolve(reply, q.qname, qname, qtype, records, behaviours)
        if any(rr.rtype == QTYPE.OPT for rr in req.ar):
            reply.add_ar(EDNS0(udp_len=1232))
        return reply, delay

    def _resolve(self, reply, owner, qname, qtype, records, behaviours, depth=0):
        rrs = records.get(qname)
        if rrs is None:
            if depth == 0:
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self._soa(qname))
            return
        match = [r for r in rrs if qtype in ("ANY", r[0])]
        if match:
            for rtype, ttl, rd in match:
                reply.add_answer(RR(owner, getattr(QTYPE, rtype), ttl=ttl, rdata=rd))
            return
        cnames = [r for r in rrs if r[0] == "CNAME"]
        if cnames and depth < 8:
            rtype, ttl, rd = cnames[0]
            reply.add_answer(RR(owner, QTYPE.CNAME, ttl=ttl, rdata=rd))
            target = str(rd.label)
            if behaviours.get(_norm(target)) is None:
                self._resolve(reply, target, _norm(target), qtype, records, behaviours, depth + 1)
            return
        reply.add_auth(self._soa(qname))  # NODATA

    def _handle(self, data, udp_max=None):
        """Wire query -> (wire reply or None, delay)."""
        try:
            req = DNSRecord.parse(data)
        except Exception:
            if len(data) >= 2:
                # FORMERR with the id, nothing else.
                return struct.pack("!HHHHHH", struct.unpack("!H", data[:2])[0],
                                   0x8001, 0, 0, 0, 0), 0.0
            return None, 0.0
        if req.header.qr or not req.questions:
            return None, 0.0
        reply, delay = self._answer(req)
        if reply is None:
            return None, 0.0
        wire = reply.pack()
        if udp_max is not None:
            limit = 512
            for rr in req.ar:
                if rr.rtype == QTYPE.OPT:
                    limit = max(512, rr.rclass)
            if len(wire) > limit:
                reply.rr, reply.auth, reply.ar = [], [], []
                reply.header.tc = 1
                wire = reply.pack()
        return wire, delay

    def _later(self, delay, fn):
        if delay <= 0:
            fn()
            return
        t = threading.Timer(delay, self._fire)
        t.args = (fn, t)
        t.daemon = True
        with self._lock:
            self._timers.add(t)
        t.start()

    def _fire(self, fn, timer):
        with self._lock:
            self._timers.discard(timer)
        if not self._stop.is_set():
            try:
                fn()
            except OSError:
                pass

    # -- servers -----------------------------------------------------------

    def _serve_udp(self):
        sock = self._udp
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([sock], [], [], 0.2)
                if not r:
                    continue
                data, peer = sock.recvfrom(65535)
            except OSError:
                if self._stop.is_set():
                    return
                continue
            wire, delay = self._handle(data, udp_max=True)
            if wire is not None:
                self._later(delay, lambda w=wire, p=peer: sock.sendto(w, p))

    def _serve_tcp(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._tcp], [], [], 0.2)
                if not r:
                    continue
                conn, _ = self._tcp.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue
            with self._lock:
                self._conns.add(conn)
            t = threading.Thread(target=self._tcp_conn, args=(conn,), name="dns-tcp", daemon=True)
            t.start()

    def _recv_exact(self, conn, n):
        buf = b""
        while len(buf) < n and not self._stop.is_set():
            try:
                r, _, _ = select.select([conn], [], [], 0.2)
                if not r:
                    continue
                chunk = conn.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf if len(buf) == n else None

    def _tcp_conn(self, conn):
        wlock = threading.Lock()

        def send(w):
            with wlock:
                conn.sendall(struct.pack("!H", len(w)) + w)

        try:
            conn.settimeout(5.0)
            while not self._stop.is_set():
                head = self._recv_exact(conn, 2)
                if head is None:
                    return
                (n,) = struct.unpack("!H", head)
                data = self._recv_exact(conn, n)
                if data is None:
                    return
                wire, delay = self._handle(data)
                if wire is not None:
                    self._later(delay, lambda w=wire: send(w))
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        last = None
        for _ in range(50):  # bounded: the TCP twin of a free UDP port may be taken
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((self.host, 0))
            port = u.getsockname()[1]
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                t.bind((self.host, port))
                t.listen(64)
            except OSError as e:
                last = e
                u.close()
                t.close()
                continue
            self._udp, self._tcp, self.port = u, t, port
            break
        else:
            raise RuntimeError("DnsServer: no free UDP+TCP port pair: %s" % last)
        for fn, name in ((self._serve_udp, "dns-udp"), (self._serve_tcp, "dns-tcp-accept")):
            th = threading.Thread(target=fn, name=name, daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop(self):
        if self._udp is None:
            return
        self._stop.set()
        with self._lock:
            timers = list(self._timers)
            conns = list(self._conns)
        for t in timers:
            t.cancel()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for th in self._threads:
            th.join(5)
        for s in (self._udp, self._tcp):
            try:
                s.close()
            except OSError:
                pass
        self._udp = self._tcp = None
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
