"""
fakedns: a tiny authoritative DNS server for the tests (standard library
only).  It answers on 127.0.0.1:PORT over UDP and TCP from a zone held in
a dict, so Postern's resolver code (common/dns.c, through $dns_servers)
can be tested without the network.

    dns = FakeDNS()
    dns.start()
    dns.set("example.test", "MX", [(10, "mx1.example.test")])
    dns.set("mx1.example.test", "A", ["127.0.0.1"])
    ... dns.conf_line()  ->  "dns_servers = [127.0.0.1]:PORT"
    dns.stop()

Record values:
    A, AAAA       address strings
    MX            (pref, host) tuples or "10 host" strings; "0 ." is a
                  null MX (RFC 7505)
    TXT           a str (one character-string, split into 255-byte pieces)
                  or a list/tuple of str (several character-strings)
    PTR, CNAME    names
Owner and target names are case-insensitive and may end in a dot.

Behaviour:
  * a name with no record of any type: NXDOMAIN; a known name without the
    asked type: NOERROR with an empty answer (no data);
  * CNAMEs are followed inside the zone and the chain is put in the
    answer, as an authoritative server does (RFC 1034 §4.3.2);
  * UDP answers longer than 512 bytes are sent truncated (TC bit, no
    records) so the client retries over TCP (RFC 1035 §4.2.1);
  * dns.servfail(name): SERVFAIL for that name; dns.drop(name): never
    answers; dns.garbage(name, kind): a broken answer, kind one of
    GARBAGE_KINDS (see _garbage()).
dns.queries lists (name, type, "udp"|"tcp") of every question received.
"""
import socket
import struct
import threading

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
         "TXT": 16, "AAAA": 28, "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
MAX_CNAME = 16
TTL = 60

GARBAGE_KINDS = ("short", "badrdlen", "cutrr", "ptrloop", "badcount",
                 "huge", "cnameloop", "wrongid", "random", "badtxt",
                 "refused")


def _norm(name):
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


def encode_name(name):
    """Wire form of a text name ("" or "." is the root); case kept."""
    name = name[:-1] if name.endswith(".") else name
    out = b""
    if name:
        for label in name.split("."):
            raw = label.encode()
            if not 0 < len(raw) < 64:
                raise ValueError("bad label in %r" % name)
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def _rr(name, rtype, rdata, ttl=TTL):
    return (encode_name(name) + struct.pack("!HHIH", rtype, 1, ttl,
                                            len(rdata)) + rdata)


def _rdata(rtype, value):
    if rtype == TYPES["A"]:
        return socket.inet_pton(socket.AF_INET, value)
    if rtype == TYPES["AAAA"]:
        return socket.inet_pton(socket.AF_INET6, value)
    if rtype == TYPES["MX"]:
        if isinstance(value, str):
            pref, host = value.split(None, 1)
        else:
            pref, host = value
        return struct.pack("!H", int(pref)) + encode_name(host)
    if rtype in (TYPES["PTR"], TYPES["CNAME"], TYPES["NS"]):
        return encode_name(value)
    if rtype == TYPES["TXT"]:
        parts = [value] if isinstance(value, (str, bytes)) else list(value)
        out = b""
        for p in parts:
            raw = p.encode() if isinstance(p, str) else p
            if not raw:
                out += b"\0"
            while raw:
                out += bytes([min(len(raw), 255)]) + raw[:255]
                raw = raw[255:]
        return out
    if isinstance(value, bytes):
        return value
    raise ValueError("unsupported type %r" % rtype)


def parse_query(data):
    """(id, flags, qname, qtype, question bytes) or None if malformed."""
    if len(data) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", data[:6])
    if qd != 1 or flags & 0x8000:
        return None
    pos, labels = 12, []
    while True:
        if pos >= len(data):
            return None
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if n > 63 or pos + n > len(data):
            return None
        labels.append(data[pos:pos + n].decode("latin-1"))
        pos += n
    if pos + 4 > len(data):
        return None
    qtype, _qclass = struct.unpack("!HH", data[pos:pos + 4])
    return qid, flags, ".".join(labels), qtype, data[12:pos + 4]


class FakeDNS:
    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = None
        self.zone = {}          # name -> {type number: [values]}
        self.special = {}       # name -> ("servfail"|"drop"|kind, ...)
        self.queries = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self.udp = self.tcp = None

    # ------------------------------------------------------------ zone

    def set(self, name, rtype, values):
        """Replace name's records of rtype ("A", "MX", ...) by values;
        values [] or None removes them (the name stays known if other
        types remain)."""
        t = TYPES[rtype.upper()]
        if isinstance(values, (str, bytes, tuple)):
            values = [values]
        with self._lock:
            recs = self.zone.setdefault(_norm(name), {})
            if values:
                for v in values:    # fail here, not in the server thread
                    _rdata(t, v)
                recs[t] = list(values)
            else:
                recs.pop(t, None)

    def remove(self, name):
        """Forget a name entirely (NXDOMAIN again)."""
        with self._lock:
            self.zone.pop(_norm(name), None)
            self.special.pop(_norm(name), None)

    def servfail(self, name):
        with self._lock:
            self.special[_norm(name)] = "servfail"

    def drop(self, name):
        with self._lock:
            self.special[_norm(name)] = "drop"

    def garbage(self, name, kind):
        if kind not in GARBAGE_KINDS:
            raise ValueError("unknown garbage kind %r" % kind)
        with self._lock:
            self.special[_norm(name)] = kind

    def conf_line(self):
        return "dns_servers = [%s]:%d" % (self.host, self.port)

    def queried(self, name, rtype=None, proto=None):
        """How many questions for name (and type, protocol) arrived."""
        with self._lock:
            return sum(1 for n, t, p in self.queries
                       if n == _norm(name) and
                       (rtype is None or t == rtype.upper()) and
                       (proto is None or p == proto))

    # ---------------------------------------------------------- answers

    def answer(self, data, proto):
        """Reply bytes for query bytes, or None to stay silent."""
        q = parse_query(data)
        if q is None:
            if len(data) >= 12:
                qid, flags = struct.unpack("!HH", data[:4])
                if not flags & 0x8000:
                    return struct.pack("!HHHHHH", qid,
                                       0x8000 | (flags & 0x7900) | FORMERR,
                                       0, 0, 0, 0)
            return None
        qid, flags, qname, qtype, question = q
        name = _norm(qname)
        with self._lock:
            self.queries.append((name, TYPE_NAMES.get(qtype, str(qtype)),
                                 proto))
            special = self.special.get(name)
            zone = {n: dict(r) for n, r in self.zone.items()}
        # QR, opcode and RD copied, AA and RA set.
        base = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080
        if special == "drop":
            return None
        if special == "servfail":
            return struct.pack("!HHHHHH", qid, base | SERVFAIL, 1, 0, 0,
                               0) + question
        if special is not None:
            return self._garbage(special, qid, base, name, qtype, question,
                                 proto)

        answers = []
        cur = name
        for _ in range(MAX_CNAME):
            recs = zone.get(cur)
            if recs is None:
                break
            cname = recs.get(TYPES["CNAME"])
            if cname and qtype != TYPES["CNAME"]:
                answers.append(_rr(cur, TYPES["CNAME"],
                                   _rdata(TYPES["CNAME"], cname[0])))
                cur = _norm(cname[0])
                continue
            for v in recs.get(qtype, []):
                answers.append(_rr(cur, qtype, _rdata(qtype, v)))
            break
        rcode = NOERROR
        if not answers and name not in zone:
            rcode = NXDOMAIN
        elif answers and cur not in zone and cur != name:
            # Chain leaving the zone: the answer holds the CNAMEs only.
            pass
        msg = struct.pack("!HHHHHH", qid, base | rcode, 1, len(answers),
                          0, 0) + question + b"".join(answers)
        if proto == "udp" and len(msg) > 512:
            return struct.pack("!HHHHHH", qid, base | 0x0200 | rcode, 1,
                               0, 0, 0) + question
        return msg

    def _garbage(self, kind, qid, base, name, qtype, question, proto):
        """Broken answers a careless or hostile server might send."""
        hdr = lambda an, flags=base: struct.pack(   # noqa: E731
            "!HHHHHH", qid, flags, 1, an, 0, 0) + question
        a_rr = _rr(name, qtype, b"\x7f\0\0\x01")
        if kind == "short":             # header cut in the middle
            return struct.pack("!HH", qid, base)
        if kind == "badrdlen":          # an A record of 5 bytes
            return hdr(1) + _rr(name, qtype, b"\x7f\0\0\x01\x02")
        if kind == "cutrr":             # record ends before its rdata
            return hdr(1) + a_rr[:-2]
        if kind == "ptrloop":           # compression pointer to itself
            off = 12 + len(question)
            return hdr(1) + struct.pack("!H", 0xC000 | off) + \
                struct.pack("!HHIH", qtype, 1, TTL, 4) + b"\x7f\0\0\x01"
        if kind == "badcount":          # says 200 answers, holds 1
            return hdr(200) + a_rr
        if kind == "huge":              # thousands of records (TCP)
            if qtype == TYPES["MX"]:
                rrs = [_rr(name, qtype, _rdata(qtype, (i % 7, "mx%d.%s" %
                                                       (i, name))))
                       for i in range(1500)]
            elif qtype == TYPES["TXT"]:
                rrs = [_rr(name, qtype, _rdata(qtype, ["x" * 255] * 3))
                       for _ in range(80)]
            else:
                rrs = [_rr(name, qtype, b"\x7f\0" + struct.pack("!H", i))
                       for i in range(3000)]
            # As many as fit in one TCP message: still a valid answer.
            size, n = len(hdr(0)), 0
            while n < len(rrs) and size + len(rrs[n]) <= 65535:
                size += len(rrs[n])
                n += 1
            msg = hdr(n) + b"".join(rrs[:n])
            if proto == "udp":
                return hdr(0, base | 0x0200)
            return msg
        if kind == "cnameloop":         # a -> b -> a ...
            other = "loop2." + name
            return hdr(2) + \
                _rr(name, TYPES["CNAME"], encode_name(other)) + \
                _rr(other, TYPES["CNAME"], encode_name(name))
        if kind == "wrongid":           # reply to somebody else's query
            return struct.pack("!HHHHHH", qid ^ 0x5a5a, base, 1, 1, 0, 0) + \
                question + a_rr
        if kind == "random":            # noise after a valid header
            return hdr(3) + bytes((i * 37 + 11) % 256 for i in range(300))
        if kind == "badtxt":            # character-string past rdata
            return hdr(1) + _rr(name, qtype, b"\x50short")
        if kind == "refused":
            return struct.pack("!HHHHHH", qid, base | REFUSED, 1, 0, 0,
                               0) + question
        raise AssertionError(kind)

    # ----------------------------------------------------------- server

    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):
            udp = socket.socket(fam, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(fam, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            break
        else:
            raise RuntimeError("fakedns: no free port for UDP and TCP")
        tcp.listen(16)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        self.udp, self.tcp, self.port = udp, tcp, port
        for fn in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        for s in (self.udp, self.tcp):
            if s is not None:
                s.close()

    def _serve_udp(self):
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(data, "udp")
            if reply is not None:
                try:
                    self.udp.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._tcp_conn, args=(conn,),
                                 daemon=True)
            t.start()

    def _tcp_conn(self, conn):
        conn.settimeout(10)
        buf = b""
        try:
            while not self._stop.is_set():
                while len(buf) < 2 or len(buf) < 2 + \
                        struct.unpack("!H", buf[:2])[0]:
                    chunk = conn.recv(65535)
                    if not chunk:
                        return
                    buf += chunk
                n = struct.unpack("!H", buf[:2])[0]
                data, buf = buf[2:2 + n], buf[2 + n:]
                reply = self.answer(data, "tcp")
                if reply is None:
                    # Silent: keep the connection open until the client
                    # gives up, as a dead server would.
                    while conn.recv(65535):
                        pass
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
        finally:
            conn.close()
