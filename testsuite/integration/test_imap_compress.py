"""
IMAP COMPRESS=DEFLATE (RFC 4978): a client that compresses with
Python's zlib (raw deflate, wbits=-15) over plain TCP and over implicit
TLS.  Checks what a client sees: the tagged OK in clear text, every byte
after it compressed both ways, many commands and a big FETCH, an idling
session that hears of a delivery at once (the server flushes its
compressor), COMPRESS refused when it cannot be done, and a clean
disconnect on garbage or a decompression bomb with the process staying
small.
"""
import os
import socket
import ssl
import time
import zlib

import pytest

from conftest import DEFAULT_USERS, PASSWORD, WAIT, make_msg, pids_with_arg

USERS = DEFAULT_USERS + tuple("z%02d" % i for i in range(1, 16))
SERVER_OPTIONS = {"imap": True, "users": USERS}


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def deliver(server, user, subject, body="hello\n"):
    server.send("sender@example.test", "%s@example.test" % user,
                make_msg(subject, body=body, sender="sender@example.test",
                         to="%s@example.test" % user))
    server.wait_token(user, subject)


class ZIMAP:
    """A byte-exact IMAP client that can turn on COMPRESS=DEFLATE."""

    def __init__(self, port, tls=False, timeout=WAIT):
        sock = socket.create_connection(("127.0.0.1", port),
                                        timeout=timeout)
        if tls:
            sock = client_ctx().wrap_socket(sock)
        self.sock = sock
        self.buf = b""
        self.comp = None
        self.decomp = None
        self.wire_in = 0

    def compress_on(self):
        self.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decomp = zlib.decompressobj(-15)
        # Whatever came after the OK's CRLF is compressed already.
        rest, self.buf = self.buf, b""
        if rest:
            self.buf = self.decomp.decompress(rest)

    def zbytes(self, data):
        """data as the client's compressor sends it (sync-flushed)."""
        if isinstance(data, str):
            data = data.encode()
        return self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.comp is not None:
            data = self.zbytes(data)
        self.sock.sendall(data)

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; pending %r" % self.buf[:200])
        self.wire_in += len(chunk)
        if self.decomp is not None:
            chunk = self.decomp.decompress(chunk)
        self.buf += chunk

    def line(self):
        while b"\n" not in self.buf:
            self._recv()
        raw, self.buf = self.buf.split(b"\n", 1)
        assert raw.endswith(b"\r"), "line without CRLF: %r" % raw
        return raw[:-1].decode("utf-8", "replace")

    def exactly(self, n):
        while len(self.buf) < n:
            self._recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def until(self, tag):
        lines = []
        while True:
            l = self.line()
            if l.startswith(tag + " "):
                return lines, l
            lines.append(l)

    def cmd(self, tag, text):
        self.send("%s %s\r\n" % (tag, text))
        return self.until(tag)

    def login(self, user):
        assert self.line().startswith("* OK ")
        _, t = self.cmd("L", 'LOGIN "%s" "%s"' % (user, PASSWORD))
        assert t.startswith("L OK "), t

    def compress(self):
        """COMPRESS DEFLATE: the OK must arrive uncompressed."""
        self.send("C COMPRESS DEFLATE\r\n")
        # Read the OK line in clear text, byte by byte up to its CRLF,
        # so nothing compressed is taken for plain text.
        while not self.buf.endswith(b"\r\n") or \
                not self.buf.split(b"\r\n")[-2].startswith(b"C "):
            b = self.sock.recv(1)
            if not b:
                raise EOFError("closed before the COMPRESS answer: %r"
                               % self.buf)
            self.buf += b
        lines = self.buf.split(b"\r\n")[:-1]
        self.buf = b""
        assert lines[-1] == b"C OK DEFLATE active.", lines
        self.compress_on()
        return [l.decode() for l in lines[:-1]]

    def at_eof(self, timeout=WAIT):
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def imap_pids(server):
    out = []
    for pid in pids_with_arg(str(server.conf)):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv0 = f.read().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(argv0) == b"imap":
            out.append(pid)
    return out


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def port(server, tls):
    return server.imaps_port if tls else server.imap_port


def test_capability_and_refusals(mserver):
    """COMPRESS=DEFLATE is offered after login only; an unknown
    mechanism is BAD and leaves the connection uncompressed; a second
    COMPRESS is NO [COMPRESSIONACTIVE]; before login it is BAD."""
    c = ZIMAP(mserver.imap_port)
    try:
        greeting = c.line()
        assert "COMPRESS=DEFLATE" not in greeting
        _, t = c.cmd("a", "COMPRESS DEFLATE")
        assert t == "a BAD Command not valid before login.", t
        _, t = c.cmd("L", 'LOGIN "z01" "%s"' % PASSWORD)
        assert t.startswith("L OK "), t
        lines, t = c.cmd("b", "CAPABILITY")
        assert "COMPRESS=DEFLATE" in lines[0].split(), lines
        _, t = c.cmd("c", "COMPRESS GZIP")
        assert t == "c BAD Unknown compression mechanism.", t
        _, t = c.cmd("d", "COMPRESS")
        assert t.startswith("d BAD "), t
        # Still clear text after the refusals.
        _, t = c.cmd("e", "NOOP")
        assert t == "e OK NOOP completed."
        c.compress()
        _, t = c.cmd("f", "COMPRESS DEFLATE")
        assert t.startswith("f NO [COMPRESSIONACTIVE] "), t
        _, t = c.cmd("g", "NOOP")
        assert t == "g OK NOOP completed."
    finally:
        c.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_many_commands_and_big_fetch(mserver, tls):
    """A session compressed both ways: pipelined commands, LIST, SELECT,
    a FETCH of a big message byte for byte, fewer bytes on the wire
    than the message, and LOGOUT."""
    user = "z02" if not tls else "z03"
    body = "".join("line %06d %s\n" % (i, "y" * 60) for i in range(30000))
    deliver(mserver, user, "zbig", body=body)
    deliver(mserver, user, "zsmall", body="small one\n")
    c = ZIMAP(port(mserver, tls), tls=tls)
    try:
        c.login(user)
        c.compress()
        lines, t = c.cmd("s", "SELECT INBOX")
        assert t.startswith("s OK [READ-WRITE]"), t
        assert "* 2 EXISTS" in lines
        # 300 NOOPs in one compressed write, answered in order.
        c.send("".join("n%d NOOP\r\n" % i for i in range(300)))
        for i in range(300):
            assert c.line() == "n%d OK NOOP completed." % i
        lines, t = c.cmd("l", 'LIST "" "*"')
        assert t == "l OK List completed."
        assert any(l.endswith('"INBOX"') for l in lines), lines
        before = c.wire_in
        c.send("f FETCH 1 (BODY.PEEK[TEXT])\r\n")
        head = c.line()
        assert head.startswith("* 1 FETCH (BODY[TEXT] {"), head
        n = int(head.rsplit("{", 1)[1].rstrip("}"))
        text = c.exactly(n)
        assert text == body.replace("\n", "\r\n").encode()
        assert c.line() == ")"
        assert c.line() == "f OK Fetch completed."
        # Repetitive text: deflate makes it a fraction on the wire.
        assert c.wire_in - before < n // 4, (c.wire_in - before, n)
        lines, t = c.cmd("h", "FETCH 2 (BODY.PEEK[HEADER.FIELDS "
                         "(SUBJECT)])")
        assert t == "h OK Fetch completed."
        assert "Subject: zsmall" in lines
        lines, t = c.cmd("o", "LOGOUT")
        assert lines == ["* BYE Logging out"]
        assert t == "o OK Logout completed."
        assert c.at_eof()
    finally:
        c.close()


def test_commands_pipelined_after_compress(mserver):
    """Compressed commands sent in the same write as COMPRESS (right
    after its CRLF) are inflated and answered."""
    c = ZIMAP(mserver.imap_port)
    try:
        c.login("z04")
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        z = comp.compress(b"a NOOP\r\nb CAPABILITY\r\n") + \
            comp.flush(zlib.Z_SYNC_FLUSH)
        c.send_raw(b"C COMPRESS DEFLATE\r\n" + z)
        # Everything after the OK line is compressed.
        while b"C OK DEFLATE active.\r\n" not in c.buf:
            c.buf += c.sock.recv(65536)
        pre, rest = c.buf.split(b"C OK DEFLATE active.\r\n", 1)
        assert pre == b""
        c.buf = rest
        c.compress_on()
        c.comp = comp
        assert c.line() == "a OK NOOP completed."
        lines, t = c.until("b")
        assert "COMPRESS=DEFLATE" in lines[0]
        assert t == "b OK Capability completed."
    finally:
        c.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_idle_hears_delivery_while_compressed(mserver, tls):
    """An idling compressed session gets EXISTS for a delivery at once:
    the server flushes its compressor (Z_SYNC_FLUSH) whenever it
    writes."""
    user = "z05" if not tls else "z06"
    c = ZIMAP(port(mserver, tls), tls=tls)
    try:
        c.login(user)
        c.compress()
        lines, _ = c.cmd("s", "SELECT INBOX")
        assert "* 0 EXISTS" in lines
        c.send("i IDLE\r\n")
        assert c.line() == "+ idling"
        mserver.send("sender@example.test", "%s@example.test" % user,
                     make_msg("zidle"))
        sent = time.monotonic()
        assert c.line() == "* 1 EXISTS"
        assert time.monotonic() - sent < 2.0
        assert c.line() == "* 1 RECENT"
        c.send("DONE\r\n")
        assert c.line() == "i OK Idle completed."
        lines, t = c.cmd("f", "FETCH 1 (BODY.PEEK[HEADER.FIELDS "
                         "(SUBJECT)])")
        assert t == "f OK Fetch completed."
        assert "Subject: zidle" in lines
    finally:
        c.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_garbage_compressed_input(mserver, tls):
    """Bytes that are not deflate data end the session cleanly (logged),
    and the server goes on serving."""
    user = "z07" if not tls else "z08"
    c = ZIMAP(port(mserver, tls), tls=tls)
    try:
        c.login(user)
        c.compress()
        _, t = c.cmd("n", "NOOP")
        assert t == "n OK NOOP completed."
        # 0xff...: an invalid block type right away.
        c.send_raw(b"\xff" * 64 + b"a NOOP\r\n")
        assert c.at_eof()
    finally:
        c.close()
    mserver.wait_log(r"imap\(%s\).*Invalid compressed data" % user)
    c = ZIMAP(port(mserver, tls), tls=tls)
    try:
        c.login(user)
        _, t = c.cmd("n", "NOOP")
        assert t == "n OK NOOP completed."
    finally:
        c.close()


def test_zlib_header_is_refused(mserver):
    """RFC 4978 is raw deflate: a client that sends zlib-wrapped data
    is disconnected rather than misread."""
    c = ZIMAP(mserver.imap_port)
    try:
        c.login("z09")
        c.compress()
        comp = zlib.compressobj(6, zlib.DEFLATED, 15)
        c.send_raw(comp.compress(b"a NOOP\r\n") +
                   comp.flush(zlib.Z_SYNC_FLUSH))
        assert c.at_eof()
    finally:
        c.close()


def test_decompression_bomb_is_bounded(mserver):
    """64 MB of one byte in one line (about 64 KB compressed) is an
    overlong line like any other: BAD at its end, the session goes on,
    and the mail process does not grow with what the data inflate to
    (inflate writes only into the bounded input buffer)."""
    c = ZIMAP(mserver.imap_port)
    try:
        c.login("z10")
        c.compress()
        _, t = c.cmd("n", "NOOP")
        assert t == "n OK NOOP completed."
        pids = imap_pids(mserver)
        assert pids
        rss_before = {p: rss_kb(p) for p in pids}
        block = b"a" * (1024 * 1024)
        c.send_raw(c.comp.compress(b"x NOOP "))
        for _ in range(64):
            c.send_raw(c.comp.compress(block))
        c.send("\r\nm NOOP\r\n")
        lines, t = c.until("m")
        assert lines == ["x BAD Too long command line"], lines
        assert t == "m OK NOOP completed."
        for p in pids:
            grown = rss_kb(p) - rss_before[p]
            assert grown < 8 * 1024, (p, grown)
    finally:
        c.close()


def test_client_ends_its_stream(mserver):
    """A client that finishes its deflate stream (Z_FINISH) and closes
    gets its last answers and a normal end of session."""
    c = ZIMAP(mserver.imap_port)
    try:
        c.login("z11")
        c.compress()
        c.send_raw(c.comp.compress(b"a NOOP\r\n") + c.comp.flush())
        assert c.line() == "a OK NOOP completed."
        assert c.at_eof()
    finally:
        c.close()
