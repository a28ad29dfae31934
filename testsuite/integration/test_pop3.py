"""
POP3 (RFC 1939, 2449, 2595, 5034, 3206): pop3-login and the pop3 mail
process, talked to with real clients: poplib, a raw socket (the telnet
dialog of the tutorials, pipelining, STLS injection, bad input),
fetchmail and curl.  Checks what a user sees: responses, message bytes,
sizes, UIDLs, what is left in the mailbox, and the logout log line.
"""
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import (DEFAULT_USERS, ENV, PASSWORD, WAIT, crlf, make_msg,
                      service_build_path, wait_for)

# Every test that changes a mailbox uses a user of its own.
USERS = DEFAULT_USERS + tuple("p%02d" % i for i in range(1, 30))
SERVER_OPTIONS = {"pop3": True, "users": USERS}



def link_service(name):
    """Put a service built in this tree next to the others in the
    harness's libexec (it links the core services only).  False when
    it is not built."""
    ENV.setup()
    src = service_build_path(name)
    if src.is_dir():
        src = src / name            # pop3/pop3, like auth/auth
    if not (src.is_file() and os.access(src, os.X_OK)):
        return False
    dst = ENV.libexec / name
    if dst.is_file() and os.access(dst, os.X_OK):
        return True
    if dst.is_symlink():
        dst.unlink()
    if ENV.staged:
        shutil.copy2(src, dst)
    else:
        dst.symlink_to(src)
    return True


@pytest.fixture(scope="module", autouse=True)
def pop3_binaries():
    for name in ("pop3-login", "pop3"):
        if not link_service(name):
            pytest.skip("%s not built" % name)


PLAINTEXT_REFUSED = ("-ERR [AUTH] Plaintext authentication disallowed on "
                     "non-secure (SSL/TLS) connections.")


def client_ctx():
    """The certificate is self-signed: no verification."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RawPOP:
    """A byte-exact POP3 client on a plain socket."""

    def __init__(self, port, timeout=WAIT):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def rawline(self):
        """One line as bytes, with its line end."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def line(self):
        raw = self.rawline()
        assert raw.endswith(b"\r\n"), "line without CRLF: %r" % raw
        return raw[:-2].decode("utf-8", "replace")

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def multi_raw(self):
        """The body of a multi-line response as it came (stuffed, CRLF),
        up to and excluding the terminating line."""
        out = b""
        while True:
            raw = self.rawline()
            if raw == b".\r\n":
                return out
            out += raw

    def multi(self):
        """Lines of a multi-line response, unstuffed (RFC 1939 §3)."""
        lines = []
        for raw in self.multi_raw().split(b"\r\n")[:-1]:
            lines.append(raw[1:] if raw.startswith(b".") else raw)
        return [l.decode("utf-8", "replace") for l in lines]

    def login(self, user, password=PASSWORD):
        assert self.line().startswith("+OK")
        assert self.cmd("USER " + user) == "+OK"
        r = self.cmd("PASS " + password)
        assert r == "+OK Logged in.", r

    def starttls(self):
        r = self.cmd("STLS")
        assert r.startswith("+OK"), r
        assert self.buf == b""
        self.sock = client_ctx().wrap_socket(self.sock)

    def at_eof(self, timeout=WAIT):
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def unstuff(raw):
    """Message bytes from the body of a RETR response."""
    lines = raw.split(b"\r\n")
    assert lines[-1] == b""
    return b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n"
                    for l in lines[:-1])


def pop(server, user, password=PASSWORD):
    p = poplib.POP3("127.0.0.1", server.pop3_port, timeout=WAIT)
    p.user(user)
    p.pass_(password)
    return p


_seq = [0]


def put_maildir(server, user, content, sub="new", suffix=""):
    """Drop a message file straight into user's Maildir (as another
    MDA would); returns its path."""
    md = server.maildir(user)
    server.make_home(user)
    for d in ("new", "cur", "tmp"):
        server.mkdir(md / d, mode=0o700)
    _seq[0] += 1
    name = "%d.M%dP%d.pop3test%s" % (1700000000 + _seq[0], _seq[0],
                                     os.getpid(), suffix)
    if isinstance(content, str):
        content = content.encode()
    return server.write(md / sub / name, content, mode=0o600)


def simple_msg(tag, body="hello\n", lf=True):
    text = ("From: sender@example.test\nTo: rcpt@example.test\n"
            "Subject: %s\nMessage-ID: <%s@example.test>\n\n%s" %
            (tag, uuid.uuid4().hex, body))
    return text if lf else text.replace("\n", "\r\n")


def deliver(server, user, tag, body="hello\n"):
    server.send("sender@example.test", "%s@example.test" % user,
                make_msg(tag, body=body, sender="sender@example.test",
                         to="%s@example.test" % user))
    server.wait_token(user, tag)


def pop3_alive(server, user="demo"):
    """A fresh login works: the service survived whatever came before."""
    p = pop(server, user)
    try:
        assert p.noop().startswith(b"+OK")
    finally:
        p.quit()


# ------------------------------------------------------- the tutorials

def test_tutorial_telnet_dialog(mserver):
    """The Dovecot telnet session of the tutorials, typed in lower case."""
    user = "p01"
    deliver(mserver, user, "tutorial-one")
    deliver(mserver, user, "mail server test",
            body="Hi carla,\nAre you reading this? Let me know if you "
                 "didn't get this.\n")
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line() == "+OK Postern ready."
        assert raw.cmd("user " + user) == "+OK"
        assert raw.cmd("pass " + PASSWORD) == "+OK Logged in."
        m = re.fullmatch(r"\+OK 2 (\d+)", raw.cmd("stat"))
        assert m, "stat"
        total = int(m.group(1))
        assert raw.cmd("list") == "+OK 2 messages:"
        listing = raw.multi()
        sizes = [int(l.split()[1]) for l in listing]
        assert [l.split()[0] for l in listing] == ["1", "2"]
        assert sum(sizes) == total
        assert raw.cmd("retr 2") == "+OK %d octets" % sizes[1]
        body = raw.multi_raw()
        msg = unstuff(body)
        assert len(msg) == sizes[1]
        assert b"Subject: mail server test\r\n" in msg
        assert b"Are you reading this?" in msg
        assert raw.cmd("quit") == "+OK Logging out."
        assert raw.at_eof()
    finally:
        raw.close()


# ------------------------------------------------ every command, poplib

def test_poplib_every_command(mserver):
    user = "p02"
    for i in range(3):
        deliver(mserver, user, "every-%d" % i, body="line %d\n" % i)
    p = pop(mserver, user)
    try:
        assert p.getwelcome() == b"+OK Postern ready."
        caps = p.capa()
        for c in ("TOP", "UIDL", "RESP-CODES", "PIPELINING",
                  "IMPLEMENTATION"):
            assert c in caps, caps
        count, total = p.stat()
        assert count == 3
        resp, listing, _ = p.list()
        assert resp.startswith(b"+OK")
        sizes = {int(a): int(b) for a, b in
                 (l.split() for l in listing)}
        assert sorted(sizes) == [1, 2, 3] and sum(sizes.values()) == total
        assert p.list(2) == b"+OK 2 %d" % sizes[2]
        resp, uidls, _ = p.uidl()
        uid = {int(a): b for a, b in (l.split() for l in uidls)}
        assert len(set(uid.values())) == 3
        for u in uid.values():
            assert re.fullmatch(rb"[0-9a-f]{16}", u), u
        assert p.uidl(3) == b"+OK 3 " + uid[3]
        resp, lines, octets = p.retr(1)
        assert resp == b"+OK %d octets" % sizes[1]
        # poplib drops the CRLFs: put them back to count the bytes.
        assert sum(len(l) + 2 for l in lines) == sizes[1]
        assert b"Subject: every-0" in lines
        resp, lines, _ = p.top(2, 0)
        assert b"Subject: every-1" in lines and lines[-1] == b""
        assert b"line 1" not in lines
        resp, lines, _ = p.top(2, 1)
        assert lines[-1] == b"line 1"
        assert p.dele(1).startswith(b"+OK")
        assert p.stat() == (2, total - sizes[1])
        with pytest.raises(poplib.error_proto, match="deleted"):
            p.retr(1)
        with pytest.raises(poplib.error_proto, match="deleted"):
            p.dele(1)
        assert p.rset().startswith(b"+OK")
        assert p.stat() == (3, total)
        assert p.noop() == b"+OK"
        assert p.dele(3).startswith(b"+OK")
        assert b"3" not in [l.split()[0] for l in p.list()[1]]
        assert p.quit().startswith(b"+OK Logging out")
    except Exception:
        p.close()
        raise
    # UPDATE removed message 3 only; 1 was undeleted by RSET.
    p = pop(mserver, user)
    try:
        assert p.stat() == (2, total - sizes[3])
        resp, uidls, _ = p.uidl()
        assert sorted(l.split()[1] for l in uidls) == \
            sorted([uid[1], uid[2]])
    finally:
        p.quit()
    assert len(mserver.messages(user)) == 2


def test_errors_in_transaction(mserver):
    user = "p03"
    deliver(mserver, user, "errors-1")
    raw = RawPOP(mserver.pop3_port)
    try:
        raw.login(user)
        assert raw.cmd("RETR 2") == "-ERR There's no message 2."
        assert raw.cmd("RETR 0").startswith("-ERR")
        assert raw.cmd("RETR -1").startswith("-ERR")
        assert raw.cmd("RETR 99999999999999999999999").startswith("-ERR")
        assert raw.cmd("RETR x").startswith("-ERR")
        assert raw.cmd("RETR").startswith("-ERR")
        assert raw.cmd("TOP 1").startswith("-ERR")
        assert raw.cmd("TOP 1 -1").startswith("-ERR")
        assert raw.cmd("LIST 1 2").startswith("-ERR")
        assert raw.cmd("STAT now").startswith("-ERR")
        assert raw.cmd("FOO").startswith("-ERR Unknown command")
        # AUTHORIZATION commands are over.
        assert raw.cmd("USER " + user).startswith("-ERR")
        assert raw.cmd("PASS x").startswith("-ERR")
        assert raw.cmd("STLS").startswith("-ERR")
        assert raw.cmd("AUTH PLAIN").startswith("-ERR")
        assert raw.cmd("").startswith("-ERR")
        assert raw.cmd("NO\0OP").startswith("-ERR")
        # An over-long line is one error; the session goes on.
        assert raw.cmd("NOOP " + "x" * 5000) == "-ERR Input line too long."
        assert raw.cmd("NOOP") == "+OK"
        assert raw.cmd("LIST 1").startswith("+OK 1 ")
        assert raw.cmd("QUIT") == "+OK Logging out."
    finally:
        raw.close()
    assert len(mserver.messages(user)) == 1


def test_too_many_bad_commands(mserver):
    user = "p04"
    raw = RawPOP(mserver.pop3_port)
    try:
        raw.login(user)
        raw.send("BAD\r\n" * 100)
        lines = []
        while True:
            try:
                lines.append(raw.line())
            except EOFError:
                break
        assert lines and all(l.startswith("-ERR") for l in lines)
        assert lines[-1] == "-ERR Too many bad commands."
        assert len(lines) < 100
    finally:
        raw.close()
    pop3_alive(mserver, user)


def test_huge_input_without_line_end(mserver):
    """Megabytes without a line end: -ERR, bounded memory, no crash."""
    user = "p05"
    raw = RawPOP(mserver.pop3_port)
    try:
        raw.login(user)
        raw.send(b"x" * (2 * 1024 * 1024) + b"\r\nNOOP\r\n")
        assert raw.line() == "-ERR Input line too long."
        assert raw.line() == "+OK"
    finally:
        raw.close()
    pop3_alive(mserver, user)


# -------------------------------------------------------- pipelining

def test_pipelined_commands(mserver):
    user = "p06"
    deliver(mserver, user, "pipe-1")
    deliver(mserver, user, "pipe-2")
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        # The login too: commands after PASS reach the mail process.
        raw.send("USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 2\r\n"
                 "TOP 1 0\r\nDELE 1\r\nLIST 1\r\nNOOP\r\nRSET\r\nQUIT\r\n"
                 % (user, PASSWORD))
        assert raw.line() == "+OK"
        assert raw.line() == "+OK Logged in."
        stat = raw.line()
        assert re.fullmatch(r"\+OK 2 \d+", stat)
        assert raw.line() == "+OK 2 messages:"
        listing = raw.multi()
        assert len(listing) == 2
        assert raw.line() == "+OK"
        assert len(raw.multi()) == 2
        assert raw.line() == "+OK %s octets" % listing[1].split()[1]
        assert b"Subject: pipe-2" in raw.multi_raw()
        assert raw.line() == "+OK"
        top = raw.multi()
        assert "Subject: pipe-1" in top and top[-1] == ""
        assert raw.line() == "+OK Marked to be deleted."
        assert raw.line() == "-ERR Message is deleted."
        assert raw.line() == "+OK"
        assert raw.line() == "+OK"
        assert raw.line() == "+OK Logging out."
        assert raw.at_eof()
    finally:
        raw.close()
    assert len(mserver.messages(user)) == 2


def test_pipelined_then_half_close(mserver):
    """All commands, then the client shuts its sending side: every answer
    still arrives, big ones included, and QUIT deletes."""
    user = "p23"
    for i in range(3):
        put_maildir(mserver, user, simple_msg("half-%d" % i,
                                              body=("w" * 79 + "\n") * 3000))
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        raw.send("USER %s\r\nPASS %s\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\n"
                 "DELE 2\r\nQUIT\r\n" % (user, PASSWORD))
        raw.sock.shutdown(socket.SHUT_WR)
        assert raw.line() == "+OK"
        assert raw.line() == "+OK Logged in."
        for i in range(3):
            assert raw.line().endswith(" octets")
            assert b"Subject: half-%d" % i in raw.multi_raw()
        assert raw.line() == "+OK Marked to be deleted."
        assert raw.line() == "+OK Logging out, messages deleted."
        assert raw.at_eof()
    finally:
        raw.close()
    assert len(mserver.messages(user)) == 2


def test_inbox_unavailable(mserver):
    """[SYS/TEMP] (RFC 3206) when the mailbox cannot be opened."""
    user = "p24"
    home = mserver.make_home(user)
    mserver.write(home / "Maildir", "not a directory\n")
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        assert raw.cmd("USER " + user) == "+OK"
        assert raw.cmd("PASS " + PASSWORD).startswith("-ERR [SYS/TEMP]")
        assert raw.at_eof()
    finally:
        raw.close()
    pop3_alive(mserver)


# ----------------------------------------------------------- CAPA

def capa_list(raw):
    assert raw.cmd("CAPA") == "+OK Capability list follows"
    return raw.multi()


def test_capa_before_and_after_login(mserver):
    user = "p07"
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        before = capa_list(raw)
        for c in ("CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING",
                  "AUTH-RESP-CODE", "STLS", "USER", "IMPLEMENTATION Postern"):
            assert c in before, before
        sasl = [c for c in before if c.startswith("SASL ")]
        assert sasl and "PLAIN" in sasl[0].split(), before
        # Not configured: not announced.
        assert not [c for c in before if c.startswith(("EXPIRE",
                                                        "LOGIN-DELAY"))]
        assert raw.cmd("USER " + user) == "+OK"
        assert raw.cmd("PASS " + PASSWORD) == "+OK Logged in."
        after = capa_list(raw)
        for c in ("CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING",
                  "IMPLEMENTATION Postern"):
            assert c in after, after
        # RFC 2449: no USER, SASL or STLS in TRANSACTION state.
        assert "USER" not in after and "STLS" not in after
        assert not [c for c in after if c.startswith("SASL")]
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()


def test_expire_and_login_delay(make_server):
    s = make_server(pop3=True, conf="pop3_expire_days = 30\n"
                                    "pop3_login_delay = 3\n")
    raw = RawPOP(s.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        caps = capa_list(raw)
        assert "EXPIRE 30" in caps and "LOGIN-DELAY 3" in caps
        assert raw.cmd("USER bob") == "+OK"
        assert raw.cmd("PASS " + PASSWORD) == "+OK Logged in."
        caps = capa_list(raw)
        assert "EXPIRE 30" in caps and "LOGIN-DELAY 3" in caps
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()
    # RFC 2449 §8.1.1: too soon after the last login.
    raw = RawPOP(s.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        assert raw.cmd("USER bob") == "+OK"
        assert raw.cmd("PASS " + PASSWORD).startswith("-ERR [LOGIN-DELAY]")
        assert raw.at_eof()
    finally:
        raw.close()
    # Another user is not affected; after the delay bob may log in.
    pop3_alive(s, "alice")
    time.sleep(3.2)
    pop3_alive(s, "bob")


# ------------------------------------------------------------ auth

def test_auth_sasl(mserver):
    import base64
    user = "p08"
    plain = base64.b64encode(b"\0%s\0%s" % (user.encode(),
                                            PASSWORD.encode())).decode()
    # Initial response (RFC 5034 §4).
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        assert raw.cmd("AUTH PLAIN " + plain) == "+OK Logged in."
        assert raw.cmd("STAT").startswith("+OK")
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()
    # No initial response: an empty challenge "+ " first.
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        assert raw.cmd("AUTH PLAIN") == "+ "
        assert raw.cmd(plain) == "+OK Logged in."
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()
    # LOGIN: two challenges.
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        c = raw.cmd("AUTH LOGIN")
        assert c.startswith("+ ")
        assert base64.b64decode(c[2:]).lower().startswith(b"user")
        c = raw.cmd(base64.b64encode(user.encode()).decode())
        assert base64.b64decode(c[2:]).lower().startswith(b"pass")
        assert raw.cmd(base64.b64encode(PASSWORD.encode()).decode()) == \
            "+OK Logged in."
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()
    # AUTH alone lists the mechanisms (RFC 1734 clients).
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        assert raw.cmd("AUTH") == "+OK"
        assert "PLAIN" in raw.multi()
        assert raw.cmd("AUTH NOSUCHMECH").startswith("-ERR")
        assert raw.cmd("AUTH PLAIN !!!notbase64").startswith("-ERR")
        # "*" cancels (RFC 5034 §4).
        assert raw.cmd("AUTH PLAIN") == "+ "
        assert raw.cmd("*").startswith("-ERR")
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()


def test_login_failures(make_server):
    s = make_server(pop3=True, conf="auth_failure_delay = 0\n")
    raw = RawPOP(s.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        assert raw.cmd("PASS " + PASSWORD) == "-ERR No username given."
        assert raw.cmd("USER bob") == "+OK"
        assert raw.cmd("PASS wrong") == "-ERR [AUTH] Authentication failed."
        # RFC 1939: after a failed PASS the client starts with USER.
        assert raw.cmd("PASS " + PASSWORD) == "-ERR No username given."
        assert raw.cmd("USER nosuchuser") == "+OK"
        assert raw.cmd("PASS " + PASSWORD) == \
            "-ERR [AUTH] Authentication failed."
        assert raw.cmd("STAT") == "-ERR Unknown command."
        assert raw.cmd("NOOP " + "y" * 600) == "-ERR Unknown command."
        assert raw.cmd("USER bob") == "+OK"
        assert raw.cmd("PASS " + PASSWORD) == "+OK Logged in."
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()
    # A password with spaces is taken whole (RFC 1939 §7).
    s.postern("user", "passwd", "carol", "-p", " two words ", check=True)
    raw = RawPOP(s.pop3_port)
    try:
        raw.login("carol", " two words ")
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()
    # An over-long line before login: -ERR, the service lives on.
    raw = RawPOP(s.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        raw.send("USER " + "z" * 20000 + "\r\n")
        assert raw.line().startswith("-ERR")
    finally:
        raw.close()
    pop3_alive(s, "alice")


def test_plaintext_refused_before_tls(make_server):
    s = make_server(pop3=True, conf="plaintext_auth_loopback = no\n")
    raw = RawPOP(s.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        caps = capa_list(raw)
        assert "USER" not in caps and "STLS" in caps
        assert not [c for c in caps if c.startswith("SASL") and
                    "PLAIN" in c.split()]
        assert raw.cmd("USER bob") == PLAINTEXT_REFUSED
        assert raw.cmd("PASS " + PASSWORD) == PLAINTEXT_REFUSED
        assert raw.cmd("AUTH PLAIN AGJvYgBzZWNyZXQtcHc=") == \
            PLAINTEXT_REFUSED
        raw.starttls()
        caps = capa_list(raw)
        assert "USER" in caps and "STLS" not in caps
        assert [c for c in caps if c.startswith("SASL") and
                "PLAIN" in c.split()]
        assert raw.cmd("USER bob") == "+OK"
        assert raw.cmd("PASS " + PASSWORD) == "+OK Logged in."
        assert raw.cmd("STAT").startswith("+OK 0 ")
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()


def test_stls_injection(mserver):
    """Bytes pipelined after STLS are dropped (RFC 2595 §4, DESIGN §8):
    no answer to them inside TLS."""
    raw = RawPOP(mserver.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        raw.send(b"STLS\r\nCAPA\r\n")
        assert raw.line() == "+OK Begin TLS negotiation now."
        assert raw.buf == b""
        raw.sock = client_ctx().wrap_socket(raw.sock)
        raw.sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            data = raw.sock.recv(4096)
            pytest.fail("answer inside TLS to an injected command: %r" %
                        data)
        raw.sock.settimeout(WAIT)
        assert raw.cmd("NOOP") == "-ERR Unknown command."
        assert raw.cmd("STLS") == "-ERR TLS is already active."
        assert raw.cmd("USER p09") == "+OK"
        assert raw.cmd("PASS " + PASSWORD) == "+OK Logged in."
        assert raw.cmd("STAT").startswith("+OK")
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()


def test_pop3s_implicit_tls(mserver):
    user = "p10"
    deliver(mserver, user, "pop3s-1")
    # Megabytes through pop3-login's TLS relay, with lines to stuff.
    put_maildir(mserver, user, simple_msg("pop3s-big",
                                          body=".x\n" + "y" * 70 + "\n"
                                          ".\n" * 3 + ("z" * 99 + "\n") *
                                          30000))
    p = poplib.POP3_SSL("127.0.0.1", mserver.pop3s_port, timeout=WAIT,
                        context=client_ctx())
    try:
        assert p.getwelcome().startswith(b"+OK")
        assert "STLS" not in p.capa()
        p.user(user)
        p.pass_(PASSWORD)
        assert p.stat()[0] == 2
        assert b"Subject: pop3s-1" in p.retr(1)[1]
        size = int(p.list(2).split()[2])
        resp, lines, _ = p.retr(2)
        assert resp == b"+OK %d octets" % size
        assert sum(len(l) + 2 for l in lines) == size > 3000000
        assert lines.count(b".") == 3 and b".x" in lines
    finally:
        p.quit()


def test_ssl_required(make_server):
    s = make_server(pop3=True, conf="ssl = required\n")
    raw = RawPOP(s.pop3_port)
    try:
        assert raw.line().startswith("+OK")
        caps = capa_list(raw)
        assert "STLS" in caps and "USER" not in caps
        assert not [c for c in caps if c.startswith("SASL")]
        assert raw.cmd("USER bob").startswith("-ERR [AUTH]")
        assert raw.cmd("AUTH PLAIN AGJvYgBzZWNyZXQtcHc=").startswith(
            "-ERR [AUTH]")
        raw.starttls()
        assert "USER" in capa_list(raw)
        assert raw.cmd("AUTH PLAIN AGJvYgBzZWNyZXQtcHc=") == \
            "+OK Logged in."
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()


def test_stls_with_poplib(mserver):
    user = "p11"
    deliver(mserver, user, "stls-1")
    p = poplib.POP3("127.0.0.1", mserver.pop3_port, timeout=WAIT)
    try:
        p.stls(context=client_ctx())
        p.user(user)
        p.pass_(PASSWORD)
        assert b"Subject: stls-1" in p.retr(1)[1]
    finally:
        p.quit()


# ------------------------------------------------- message bytes, sizes

def test_lf_only_file_crlf_and_sizes(mserver):
    user = "p12"
    body = ("first line\n.hidden line starting with a dot\n..two dots\n"
            ".\nlast line without end")
    text = simple_msg("lf-only", body=body)
    put_maildir(mserver, user, text)
    raw = RawPOP(mserver.pop3_port)
    try:
        raw.login(user)
        m = re.fullmatch(r"\+OK 1 (\d+)", raw.cmd("LIST 1"))
        assert m
        size = int(m.group(1))
        assert raw.cmd("RETR 1") == "+OK %d octets" % size
        wire = raw.multi_raw()
        # Every line ends in CRLF, none in a bare LF.
        assert b"\n" not in wire.replace(b"\r\n", b"")
        # Byte-stuffing (RFC 1939 §3) of each line starting with ".".
        assert b"\r\n..hidden line" in wire
        assert b"\r\n...two dots\r\n" in wire
        assert b"\r\n..\r\n" in wire
        msg = unstuff(wire)
        # The size LIST gave is what RETR sent (the final CRLF of the
        # unterminated last line is the terminator's).
        expect = crlf(text)
        assert msg == expect + b"\r\n" or msg == expect
        assert size == len(expect)
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()


def test_crlf_file_and_top(mserver):
    user = "p13"
    text = simple_msg("crlf-file", body="b1\nb2\n.b3\nb4\n", lf=False)
    put_maildir(mserver, user, text)
    raw = RawPOP(mserver.pop3_port)
    try:
        raw.login(user)
        size = int(raw.cmd("LIST 1").split()[2])
        assert size == len(text)
        assert raw.cmd("RETR 1") == "+OK %d octets" % size
        assert unstuff(raw.multi_raw()) == text.encode()
        assert raw.cmd("TOP 1 0") == "+OK"
        top = raw.multi()
        assert top[-1] == "" and "b1" not in top
        assert "Subject: crlf-file" in top
        assert raw.cmd("TOP 1 3") == "+OK"
        top = raw.multi()
        assert top[-3:] == ["b1", "b2", ".b3"]
        assert raw.cmd("TOP 1 100") == "+OK"
        assert raw.multi()[-1] == "b4"
        assert raw.cmd("QUIT").startswith("+OK")
    finally:
        raw.close()


def test_big_message(mserver):
    """A message far larger than any buffer streams whole."""
    user = "p14"
    line = "0123456789" * 7 + "\n"
    body = line * 60000 + ".dot\n"
    text = simple_msg("big-one", body=body)
    put_maildir(mserver, user, text)
    p = pop(mserver, user)
    try:
        size = int(p.list(1).split()[2])
        assert size == len(crlf(text))
        resp, lines, octets = p.retr(1)
        assert resp == b"+OK %d octets" % size
        assert sum(len(l) + 2 for l in lines) == size
        assert lines[-1] == b".dot"
    finally:
        p.quit()


# --------------------------------------------------- UPDATE and locking

def test_dropped_connection_deletes_nothing(mserver):
    user = "p15"
    deliver(mserver, user, "drop-1")
    deliver(mserver, user, "drop-2")
    raw = RawPOP(mserver.pop3_port)
    raw.login(user)
    assert raw.cmd("DELE 1").startswith("+OK")
    assert raw.cmd("DELE 2").startswith("+OK")
    assert raw.cmd("STAT").startswith("+OK 0 ")
    raw.close()     # no QUIT
    mserver.wait_log(r"pop3\(%s\)<\d+>: Disconnected: Connection closed"
                     % user)
    assert len(mserver.messages(user)) == 2
    p = pop(mserver, user)
    try:
        assert p.stat()[0] == 2
    finally:
        p.quit()
    assert len(mserver.messages(user)) == 2


def test_in_use(mserver):
    """RFC 1939 §8 / RFC 2449 §8.1.2: one session per maildrop."""
    user = "p16"
    deliver(mserver, user, "inuse-1")
    first = RawPOP(mserver.pop3_port)
    try:
        first.login(user)
        second = RawPOP(mserver.pop3_port)
        try:
            assert second.line().startswith("+OK")
            assert second.cmd("USER " + user) == "+OK"
            r = second.cmd("PASS " + PASSWORD)
            assert r.startswith("-ERR [IN-USE]"), r
            assert second.at_eof()
        finally:
            second.close()
        # The first session is not disturbed.
        assert first.cmd("STAT").startswith("+OK 1 ")
        assert first.cmd("QUIT").startswith("+OK")
    finally:
        first.close()
    pop3_alive(mserver, user)


def test_retr_marks_seen(mserver):
    user = "p17"
    put_maildir(mserver, user, simple_msg("seen-1"))
    put_maildir(mserver, user, simple_msg("seen-2"))
    p = pop(mserver, user)
    try:
        p.retr(1)
        p.top(2, 0)
    finally:
        p.quit()
    names = [f.name for f in mserver.maildir_files(user)]
    seen = [n for n in names if re.search(r":2,[A-Z]*S", n)]
    assert len(seen) == 1, names
    assert b"seen-1" in (mserver.maildir(user) / "cur" / seen[0]).read_bytes()


def test_logout_log_line(mserver):
    user = "p18"
    text = simple_msg("logline")
    put_maildir(mserver, user, text)
    put_maildir(mserver, user, simple_msg("logline-2"))
    p = pop(mserver, user)
    try:
        total = p.stat()[1]
        size1 = int(p.list(1).split()[2])
        p.retr(1)
        p.dele(2)
    finally:
        p.quit()
    mserver.wait_log(r"pop3\(%s\)<\d+>: Disconnected: Logged out top=0/0, "
                     r"retr=1/%d, del=1/2, size=%d$" % (user, size1, total))


# ------------------------------------------------------------ UIDL

def test_uidl_from_dovecot_uidlist(mserver):
    """A Maildir Dovecot served keeps its UIDLs: the store imports
    dovecot-uidlist, and %08Xu%08Xv gives Dovecot's strings."""
    user = "p19"
    md = mserver.maildir(user)
    a = put_maildir(mserver, user, simple_msg("dove-1"), sub="cur",
                    suffix=":2,S")
    b = put_maildir(mserver, user, simple_msg("dove-2"), sub="cur",
                    suffix=":2,")
    uidvalidity = 1487321712
    mserver.write(md / "dovecot-uidlist",
                  "3 V%d N8 G0123456789abcdef0123456789abcdef\n"
                  "3 :%s\n7 :%s\n" % (uidvalidity, a.name.split(":")[0],
                                      b.name.split(":")[0]),
                  mode=0o600)
    p = pop(mserver, user)
    try:
        resp, uidls, _ = p.uidl()
        got = [l.split()[1].decode() for l in uidls]
        assert got == ["%08x%08x" % (3, uidvalidity),
                       "%08x%08x" % (7, uidvalidity)]
        resp, lines, _ = p.retr(2)
        assert b"Subject: dove-2" in lines
    finally:
        p.quit()


def test_uidl_stable_and_format(make_server):
    s = make_server(pop3=True, conf="pop3_uidl_format = %v.%u\n")
    for i in range(3):
        put_maildir(s, "bob", simple_msg("stable-%d" % i))
    p = pop(s, "bob")
    try:
        first = [l.split()[1] for l in p.uidl()[1]]
        assert all(re.fullmatch(rb"\d+\.\d+", u) for u in first), first
        uidv = {u.split(b".")[0] for u in first}
        assert len(uidv) == 1
        assert [int(u.split(b".")[1]) for u in first] == \
            sorted(int(u.split(b".")[1]) for u in first)
        p.dele(2)
    finally:
        p.quit()
    put_maildir(s, "bob", simple_msg("stable-new"))
    p = pop(s, "bob")
    try:
        again = [l.split()[1] for l in p.uidl()[1]]
        assert again[:2] == [first[0], first[2]]
        assert len(again) == 3 and again[2] not in first
    finally:
        p.quit()


# --------------------------------------------------- big mailboxes

def test_ten_thousand_messages(mserver):
    user = "p20"
    md = mserver.maildir(user)
    mserver.make_home(user)
    for d in ("new", "cur", "tmp"):
        mserver.mkdir(md / d, mode=0o700)
    for i in range(10000):
        with open(md / "new" / ("1600000000.M%dP1.big" % i), "wb") as f:
            f.write(b"Subject: m%d\n\nbody %d\n" % (i, i))
    if os.geteuid() == 0:
        for n in os.listdir(md / "new"):
            os.chown(md / "new" / n, mserver.uid, mserver.gid)
    p = poplib.POP3("127.0.0.1", mserver.pop3_port, timeout=300)
    try:
        p.user(user)
        p.pass_(PASSWORD)
        count, total = p.stat()
        assert count == 10000
        resp, listing, _ = p.list()
        assert len(listing) == 10000
        assert sum(int(l.split()[1]) for l in listing) == total
        assert [int(l.split()[0]) for l in listing] == \
            list(range(1, 10001))
        resp, uidls, _ = p.uidl()
        assert len(uidls) == 10000
        assert len({l.split()[1] for l in uidls}) == 10000
        resp, lines, _ = p.retr(10000)
        assert lines[0].startswith(b"Subject: m")
    finally:
        p.quit()


# ------------------------------------------------------------ mbox

def test_mbox_inbox(make_server):
    s = make_server(mail="mbox", pop3=True)
    for i in range(3):
        deliver(s, "bob", "mbox-%d" % i, body="From here\n.dot line\n")
    p = pop(s, "bob")
    try:
        count, total = p.stat()
        assert count == 3
        resp, lines, _ = p.retr(2)
        assert b"Subject: mbox-1" in lines
        # mbox quoting undone, POP3 stuffing undone by poplib.
        assert b"From here" in lines and b".dot line" in lines
        size = int(p.list(2).split()[2])
        assert sum(len(l) + 2 for l in lines) == size
        p.dele(1)
    finally:
        p.quit()
    msgs = s.messages("bob")
    assert len(msgs) == 2
    assert b"mbox-0" not in b"".join(msgs)


# ---------------------------------------------------- other clients

def run_fetchmail(server, user, workdir, keep, tls):
    """fetchmail with STLS (the certificate is self-signed: not
    checked) or in plaintext on loopback."""
    out = workdir / "out.bsmtp"
    rc = workdir / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        "poll 127.0.0.1 service %d protocol pop3 uidl\n"
        "  user \"%s\" password \"%s\" is root here\n"
        "  bsmtp \"%s\" %s %s\n"
        % (server.pop3_port, user, PASSWORD, out,
           "keep" if keep else "nokeep",
           "sslproto tls1.2+ no sslcertck" if tls else "sslproto ''"))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(workdir))
    r = subprocess.run(["fetchmail", "-f", str(rc), "-i",
                        str(workdir / "fetchids"), "--nodetach", "-v"],
                       capture_output=True, timeout=120, env=env)
    text = out.read_bytes() if out.exists() else b""
    return r, text


@pytest.mark.skipif(not shutil.which("fetchmail"), reason="no fetchmail")
def test_fetchmail_keep_then_delete(mserver):
    user = "p21"
    for i in range(2):
        deliver(mserver, user, "fetchmail-%d" % i)
    work = tempfile.mkdtemp(prefix="pst-fm-")
    try:
        from pathlib import Path
        work = Path(work)
        r, text = run_fetchmail(mserver, user, work, keep=True, tls=True)
        assert r.returncode == 0, r.stderr
        assert b"fetchmail-0" in text and b"fetchmail-1" in text
        assert len(mserver.messages(user)) == 2
        # Kept: the UIDLs remember them; nothing new is fetched.
        (work / "out.bsmtp").unlink()
        deliver(mserver, user, "fetchmail-2")
        r, text = run_fetchmail(mserver, user, work, keep=True, tls=True)
        assert r.returncode == 0, r.stderr
        assert b"fetchmail-2" in text and b"fetchmail-0" not in text
        # Delete mode: everything fetched is gone from the server.
        (work / "out.bsmtp").unlink()
        (work / "fetchids").unlink()
        r, text = run_fetchmail(mserver, user, work, keep=False, tls=False)
        assert r.returncode == 0, r.stderr
        assert text.count(b"Subject: fetchmail-") == 3
        assert wait_for(lambda: not mserver.messages(user), timeout=WAIT)
    finally:
        shutil.rmtree(str(work), ignore_errors=True)


@pytest.mark.skipif(not shutil.which("curl"), reason="no curl")
def test_curl(mserver):
    user = "p22"
    deliver(mserver, user, "curl-1", body="curl body\n")
    url = "pop3://127.0.0.1:%d/" % mserver.pop3_port
    r = subprocess.run(["curl", "-sS", "--max-time", "60", "--user",
                        "%s:%s" % (user, PASSWORD), url],
                       capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr
    listing = r.stdout.decode().split("\r\n")
    assert re.fullmatch(r"1 \d+", listing[0]), listing
    size = int(listing[0].split()[1])
    r = subprocess.run(["curl", "-sS", "--max-time", "60", "--user",
                        "%s:%s" % (user, PASSWORD), url + "1"],
                       capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == size
    assert b"Subject: curl-1\r\n" in r.stdout
    assert r.stdout.endswith(b"curl body\r\n")


def test_imap_sees_pop3_deletions(make_server):
    """A POP3 QUIT removes messages; an IMAP session of the same user
    sees them go (the store keeps both views consistent)."""
    import imaplib
    if not all(link_service(n) for n in ("imap-login", "imap")):
        pytest.skip("imap-login and imap not built")
    s = make_server(pop3=True, imap=True)
    for i in range(3):
        deliver(s, "bob", "both-%d" % i)
    im = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=WAIT)
    try:
        im.login("bob", PASSWORD)
        typ, data = im.select("INBOX")
        assert data[0] == b"3"
        p = pop(s, "bob")
        try:
            p.dele(1)
        finally:
            p.quit()
        im.noop()
        typ, data = im.search(None, "ALL")
        assert len(data[0].split()) == 2
    finally:
        im.logout()
