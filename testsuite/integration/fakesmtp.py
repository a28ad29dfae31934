"""
A scripted SMTP server on loopback, the remote side of outbound tests.

    with FakeSMTP(replies={"RCPT": ["451 4.3.0 later",
                                    "250 2.1.5 Ok"]}) as peer:
        ... relayhost = [127.0.0.1]:peer.port ...
        peer.wait_transactions(1)

Replies are scripted per command (keys "GREETING", "EHLO", "MAIL", "RCPT",
"DATA", "BODY", "EOD", "RSET", "QUIT").  A value is
  - a string: the reply, every time ("" or None: the default reply);
  - a list: one element per use of the command across all connections,
    the last one repeating;
  - a callable(arg) -> reply, where arg is the address for MAIL/RCPT,
    the message bytes for EOD, the command argument otherwise.
A reply may span lines ("250-a\\r\\n250 b" or a list of strings in a
tuple).  The special reply "DROP" closes the connection without an
answer; for "BODY" (asked once the DATA content starts arriving) it
drops the connection in the middle of the message.

Everything received is recorded: `transactions` (completed, i.e. the
end of data was answered 2xx) as Transaction objects, `commands` (every
command line with its connection number), `max_concurrent` (most
connections open at the same time) and `connections` (how many were
accepted).  Safe to read from the test thread.  eod_delay: seconds to
wait before answering the end of data; rcvbuf: SO_RCVBUF of the
connections.
"""
import socket
import threading
import time

MAX_LINE = 4096
MAX_DATA = 64 * 1024 * 1024


class Transaction:
    def __init__(self, conn_no, helo, mail_from, mail_params):
        self.conn_no = conn_no
        self.helo = helo
        self.mail_from = mail_from
        self.mail_params = mail_params
        self.rcpts = []
        self.data = b""
        self.raw = b""          # the DATA bytes as they came (stuffed)

    def __repr__(self):
        return "<Transaction from=%r rcpts=%r %d bytes>" % (
            self.mail_from, self.rcpts, len(self.data))


def _path(arg):
    """The address in 'FROM:<a@b> SIZE=1' / 'TO:<a@b>' and the rest."""
    _, _, rest = arg.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        end = rest.find(">")
        if end > 0:
            return rest[1:end], rest[end + 1:].strip()
    addr, _, params = rest.partition(" ")
    return addr, params.strip()


class FakeSMTP:
    DEFAULTS = {
        "GREETING": "220 peer.example ESMTP fake",
        "MAIL": "250 2.1.0 Ok",
        "RCPT": "250 2.1.5 Ok",
        "DATA": "354 End data with <CR><LF>.<CR><LF>",
        "BODY": None,
        "EOD": "250 2.0.0 Ok: queued as FAKE%d",
        "RSET": "250 2.0.0 Ok",
        "QUIT": "221 2.0.0 Bye",
        "NOOP": "250 2.0.0 Ok",
    }

    def __init__(self, replies=None, ehlo=("PIPELINING", "SIZE 52428800",
                                           "8BITMIME", "ENHANCEDSTATUSCODES"),
                 eod_delay=0.0, host="127.0.0.1", port=0, timeout=60,
                 rcvbuf=None):
        self.replies = dict(replies or {})
        self.ehlo = tuple(ehlo)
        self.eod_delay = eod_delay
        self.timeout = timeout
        self.lock = threading.Lock()
        self.transactions = []
        self.commands = []
        self.connections = 0
        self.active = 0
        self.max_concurrent = 0
        self._uses = {}
        self._socks = set()
        self._stopping = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            # A small window keeps a big message from being sent whole
            # into kernel buffers (tests that cut a transfer short).
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                      rcvbuf)
        self._listener.bind((host, port))
        self._listener.listen(128)
        self.host = host
        self.port = self._listener.getsockname()[1]
        self._thread = None

    # ---- lifecycle ----

    def start(self):
        self._thread = threading.Thread(target=self._accept_loop,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping = True
        try:
            self._listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- what the tests look at ----

    def wait_transactions(self, n, timeout=30):
        """Wait until at least n transactions completed; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.transactions) >= n:
                    return list(self.transactions)
            time.sleep(0.05)
        with self.lock:
            raise AssertionError("peer saw %d transactions, expected %d: %r"
                                 % (len(self.transactions), n,
                                    self.transactions))

    def wait_commands(self, verb, n=1, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.command_lines(verb)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError("peer saw %d %s commands, expected %d" %
                             (len(self.command_lines(verb)), verb, n))

    def command_lines(self, verb):
        with self.lock:
            return [l for _, l in self.commands
                    if l.upper().startswith(verb.upper())]

    def set_reply(self, key, value):
        with self.lock:
            self.replies[key] = value
            self._uses.pop(key, None)

    # ---- the server ----

    def _accept_loop(self):
        while not self._stopping:
            try:
                s, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.active += 1
                self.max_concurrent = max(self.max_concurrent, self.active)
                no = self.connections
                self._socks.add(s)
            threading.Thread(target=self._serve, args=(s, no),
                             daemon=True).start()

    def _reply_for(self, key, arg):
        with self.lock:
            spec = self.replies.get(key)
            if isinstance(spec, list):
                i = self._uses.get(key, 0)
                self._uses[key] = i + 1
                spec = spec[min(i, len(spec) - 1)] if spec else None
        if callable(spec):
            spec = spec(arg)
        if spec is None or spec == "":
            spec = self.DEFAULTS.get(key)
        return spec

    def _serve(self, s, no):
        s.settimeout(self.timeout)
        buf = b""
        helo = None
        tx = None

        def send(reply):
            if isinstance(reply, tuple):
                reply = "\r\n".join(reply)
            s.sendall(reply.encode() + b"\r\n")

        def readline():
            nonlocal buf
            while b"\n" not in buf:
                if len(buf) > MAX_LINE:
                    raise ValueError("line too long")
                chunk = s.recv(65536)
                if not chunk:
                    raise EOFError
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            return line.rstrip(b"\r").decode("utf-8", "replace")

        try:
            r = self._reply_for("GREETING", "")
            if r == "DROP":
                return
            send(r)
            while True:
                line = readline()
                with self.lock:
                    self.commands.append((no, line))
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                if verb in ("EHLO", "HELO"):
                    helo = arg
                    tx = None
                    r = self._reply_for("EHLO", arg)
                    if r == "DROP":
                        return
                    if r is None:
                        if verb == "EHLO":
                            lines = ["peer.example"] + list(self.ehlo)
                            r = tuple("250%s%s" % (
                                " " if i == len(lines) - 1 else "-", l)
                                for i, l in enumerate(lines))
                        else:
                            r = "250 peer.example"
                    send(r)
                elif verb == "MAIL":
                    addr, params = _path(arg)
                    r = self._reply_for("MAIL", addr)
                    if r == "DROP":
                        return
                    if r.startswith("2"):
                        tx = Transaction(no, helo, addr, params)
                    send(r)
                elif verb == "RCPT":
                    addr, _ = _path(arg)
                    if tx is None:
                        send("503 5.5.1 Error: need MAIL command")
                        continue
                    r = self._reply_for("RCPT", addr)
                    if r == "DROP":
                        return
                    if r.startswith("2"):
                        tx.rcpts.append(addr)
                    send(r)
                elif verb == "DATA":
                    if tx is None or not tx.rcpts:
                        send("554 5.5.1 Error: no valid recipients")
                        continue
                    r = self._reply_for("DATA", "")
                    if r == "DROP":
                        return
                    send(r)
                    if not r.startswith("3"):
                        continue
                    data, buf = self._read_data(s, buf, no)
                    if data is None:
                        return
                    raw = data
                    # Undo dot-stuffing (RFC 5321 §4.5.2).
                    lines = data.split(b"\r\n")
                    data = b"\r\n".join(l[1:] if l.startswith(b".") else l
                                        for l in lines)
                    tx.raw = raw
                    tx.data = data
                    if self.eod_delay:
                        time.sleep(self.eod_delay)
                    r = self._reply_for("EOD", data)
                    if r == "DROP":
                        return
                    if "%d" in r:
                        r = r % no
                    if r.startswith("2"):
                        with self.lock:
                            self.transactions.append(tx)
                    tx = None
                    send(r)
                elif verb == "RSET":
                    tx = None
                    send(self._reply_for("RSET", ""))
                elif verb == "NOOP":
                    send(self._reply_for("NOOP", ""))
                elif verb == "QUIT":
                    send(self._reply_for("QUIT", ""))
                    return
                else:
                    send("502 5.5.2 Error: command not recognized")
        except (EOFError, OSError, ValueError):
            return
        finally:
            with self.lock:
                self.active -= 1
                self._socks.discard(s)
            try:
                s.close()
            except OSError:
                pass

    def _read_data(self, s, buf, no):
        """The DATA content up to <CRLF>.<CRLF> (without it); None when
        the connection ends first or BODY says DROP."""
        asked = False
        while True:
            if buf and not asked:
                asked = True
                if self._reply_for("BODY", "") == "DROP":
                    return None, b""
            end = buf.find(b"\r\n.\r\n")
            if buf.startswith(b".\r\n"):
                return b"", buf[3:]
            if end >= 0:
                return buf[:end + 2], buf[end + 5:]
            if len(buf) > MAX_DATA:
                return None, b""
            chunk = s.recv(65536)
            if not chunk:
                return None, b""
            buf += chunk
