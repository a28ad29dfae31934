"""
The auth service (DESIGN §7, doc/internals.md "Authentication"), spoken
to directly on its UNIX sockets as smtpd, the login processes and
posternd speak to it: the mechanism list, PLAIN and LOGIN, CRAM-MD5 when
configured, the same answer for an unknown user and a wrong password,
plaintext refused on an unsecured connection, cancelling, bad input
(garbage, over-long lines), the failure delay and its doubling per
address, tickets redeemed once on the auth-master socket, reload, and in
root mode system users through PAM and the shadow file.

Each test that fails logins uses its own remote address (the rip field),
so the per-address penalties of different tests do not mix.
"""
import base64
import hashlib
import hmac
import os
import pwd
import re
import socket
import stat
import subprocess
import time

import pytest

from conftest import PASSWORD, requires_root, wait_for

SERVER_OPTIONS = {"conf": "auth_failure_delay = 1s\n"}
TIMEOUT = 30


class AuthConn:
    """A line client on an auth socket."""

    def __init__(self, path, handshake=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(str(path))
        self.buf = b""
        self.mechs = []
        if handshake:
            self.handshake = self.read_handshake()

    def read_handshake(self):
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line == "DONE":
                break
        assert lines[0] == "VERSION 1", lines
        self.mechs = [l.split()[1:] for l in lines if l.startswith("MECH ")]
        return lines

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, line):
        self.send(line + "\n")
        return self.line()

    def closed(self, timeout=TIMEOUT):
        """True when the server closes the connection (reading on)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain(user, password):
    return b64("\0%s\0%s" % (user, password))


def auth_line(rid, mech, rip, service="smtp", secured=True, resp=None):
    line = "AUTH %d %s service=%s rip=%s lip=127.0.0.1" % (
        rid, mech, service, rip)
    if secured:
        line += " secured"
    if resp is not None:
        line += " resp=" + resp
    return line


def auth_ready(srv):
    """posternd answers on SMTP before auth may have bound its sockets:
    wait for its start line (logged once they are in place)."""
    srv.wait_log(r"auth\[\d+\]: started ")


def client(srv):
    auth_ready(srv)
    return AuthConn(srv.spool / "private" / "auth")


def master(srv):
    auth_ready(srv)
    return AuthConn(srv.spool / "private" / "auth-master", handshake=False)


def timed(conn, line):
    t0 = time.monotonic()
    reply = conn.cmd(line)
    return reply, time.monotonic() - t0


def xtext(s):
    return "".join(c if "!" <= c <= "~" and c not in "+=" else
                   "+%02X" % ord(c) for c in s)


# ------------------------------------------------------------ mechanisms

def test_handshake_default_mechanisms(mserver):
    with client(mserver) as c:
        assert c.handshake == ["VERSION 1", "MECH PLAIN plaintext",
                               "MECH LOGIN plaintext", "DONE"]


def test_cram_md5_offered_only_when_configured(mserver, make_server):
    # not in the default auth_mechanisms: not offered, and refused
    with client(mserver) as c:
        assert ["CRAM-MD5"] not in c.mechs
        reply, took = timed(c, auth_line(1, "CRAM-MD5", "192.0.2.10"))
        assert reply == "FAIL 1 reason=unsupported+20mechanism"
        assert took < 0.8
    srv = make_server(conf="auth_mechanisms = plain login cram-md5\n")
    with open(srv.dir / "users", "a") as f:
        f.write("cram:{PLAIN}cram-pw:::::\n")
    with client(srv) as c:
        assert c.handshake == ["VERSION 1", "MECH PLAIN plaintext",
                               "MECH LOGIN plaintext", "MECH CRAM-MD5",
                               "DONE"]
        # RFC 2195: the challenge, then "user hex(HMAC-MD5(pw, chal))"
        reply = c.cmd(auth_line(1, "CRAM-MD5", "192.0.2.11"))
        m = re.fullmatch(r"CONT 1 (\S+)", reply)
        assert m, reply
        chal = base64.b64decode(m.group(1))
        assert re.fullmatch(rb"<[^@>]+@mail\.example\.test>", chal), chal
        digest = hmac.new(b"cram-pw", chal, hashlib.md5).hexdigest()
        assert c.cmd("CONT 1 " + b64("cram " + digest)) == "OK 1 user=cram"
    # a passdb without stored secrets cannot do CRAM-MD5: not offered
    srv2 = make_server(conf="passdb = pam\n"
                       "auth_mechanisms = plain cram-md5\n")
    with client(srv2) as c:
        assert c.handshake == ["VERSION 1", "MECH PLAIN plaintext", "DONE"]
    srv2.wait_log(r"auth_mechanisms: CRAM-MD5 needs stored secrets")


# ------------------------------------------------------------ logins

def test_plain_ok(mserver):
    with client(mserver) as c:
        assert c.cmd(auth_line(1, "PLAIN", "192.0.2.20",
                               resp=plain("alice", PASSWORD))) == \
            "OK 1 user=alice"
        # without an initial response: an empty challenge first
        assert c.cmd(auth_line(2, "plain", "192.0.2.20")) == "CONT 2"
        assert c.cmd("CONT 2 " + plain("bob", PASSWORD)) == "OK 2 user=bob"
        # auth_username_format = %Lu (the default): names lower-cased
        assert c.cmd(auth_line(3, "PLAIN", "192.0.2.20",
                               resp=plain("Alice", PASSWORD))) == \
            "OK 3 user=alice"
    mserver.wait_log(r"auth\[\d+\]: auth ok: user=<alice>, method=PLAIN, "
                     r"rip=192\.0\.2\.20, lip=127\.0\.0\.1, service=smtp$")
    assert PASSWORD not in mserver.log()
    assert plain("alice", PASSWORD) not in mserver.log()


def test_login_mechanism(mserver):
    with client(mserver) as c:
        assert c.cmd(auth_line(7, "LOGIN", "192.0.2.21")) == \
            "CONT 7 " + b64("Username:")
        assert c.cmd("CONT 7 " + b64("carol")) == "CONT 7 " + b64("Password:")
        assert c.cmd("CONT 7 " + b64(PASSWORD)) == "OK 7 user=carol"


def test_many_exchanges_on_one_connection(mserver):
    with client(mserver) as c:
        c.send("".join(auth_line(i, "PLAIN", "192.0.2.22",
                                 resp=plain("demo", PASSWORD)) + "\n"
                       for i in range(100, 140)))
        replies = sorted(c.line() for _ in range(40))
        assert replies == sorted("OK %d user=demo" % i
                                 for i in range(100, 140))


def test_wrong_password_and_unknown_user_look_the_same(mserver):
    with client(mserver) as c:
        r1, t1 = timed(c, auth_line(1, "PLAIN", "192.0.2.30",
                                    resp=plain("alice", "wrong-pw")))
        r2, t2 = timed(c, auth_line(2, "PLAIN", "192.0.2.31",
                                    resp=plain("nosuchuser", "wrong-pw")))
    assert r1 == "FAIL 1 user=alice reason=authentication+20failed"
    assert r2 == "FAIL 2 user=nosuchuser reason=authentication+20failed"
    # auth_failure_delay = 1s for both: a first failure from an address
    assert t1 >= 0.9 and t2 >= 0.9, (t1, t2)
    for user, rip in (("alice", "192.0.2.30"), ("nosuchuser", "192.0.2.31")):
        mserver.wait_log(r"auth\[\d+\]: auth failed: user=<%s>, method=PLAIN, "
                         r"rip=%s, lip=127\.0\.0\.1, service=smtp, "
                         r"reason=authentication failed$" %
                         (user, re.escape(rip)))
    assert "wrong-pw" not in mserver.log()
    assert not mserver.log_lines(r"unknown user|password mismatch")


def test_failure_delay_doubles_per_address(mserver):
    rip = "192.0.2.40"
    with client(mserver) as c:
        times = []
        for i in range(1, 4):
            reply, took = timed(c, auth_line(i, "PLAIN", rip,
                                             resp=plain("bob", "bad")))
            assert reply.startswith("FAIL %d " % i), reply
            times.append(took)
        # 1 s, 2 s, 4 s: measured from the request, never shorter
        assert times[0] >= 0.9 and times[1] >= 1.9 and times[2] >= 3.9, \
            times
        # another address is not slowed by this one's failures
        reply, took = timed(c, auth_line(9, "PLAIN", "192.0.2.41",
                                         resp=plain("bob", "bad")))
        assert reply.startswith("FAIL 9 ") and 0.9 <= took < 3.5, took


def test_success_does_not_reset_the_penalty(mserver):
    rip = "192.0.2.50"
    with client(mserver) as c:
        reply, t1 = timed(c, auth_line(1, "PLAIN", rip,
                                       resp=plain("alice", "bad")))
        assert reply.startswith("FAIL 1 ") and t1 >= 0.9
        assert c.cmd(auth_line(2, "PLAIN", rip,
                               resp=plain("alice", PASSWORD))) == \
            "OK 2 user=alice"
        reply, t3 = timed(c, auth_line(3, "PLAIN", rip,
                                       resp=plain("alice", "bad")))
        assert reply.startswith("FAIL 3 ") and t3 >= 1.9, t3


def test_hanging_up_early_gains_nothing(mserver):
    rip = "192.0.2.60"
    c = client(mserver)
    t0 = time.monotonic()
    c.send(auth_line(1, "PLAIN", rip, resp=plain("alice", "bad")) + "\n")
    time.sleep(0.2)
    c.close()
    # the next attempt from that address waits until the first FAIL
    # would have been sent, even with the right password
    with client(mserver) as c2:
        assert c2.cmd(auth_line(1, "PLAIN", rip,
                                resp=plain("alice", PASSWORD))) == \
            "OK 1 user=alice"
        assert time.monotonic() - t0 >= 0.9
        # and the failure was counted: the next one is held 2 s
        reply, took = timed(c2, auth_line(2, "PLAIN", rip,
                                          resp=plain("alice", "bad")))
        assert reply.startswith("FAIL 2 ") and took >= 1.9, took


def test_plaintext_refused_without_secured(mserver, make_server):
    with client(mserver) as c:
        reply, took = timed(c, auth_line(1, "PLAIN", "192.0.2.70",
                                         secured=False,
                                         resp=plain("alice", PASSWORD)))
        assert reply == ("FAIL 1 reason=plaintext+20authentication+20"
                         "disallowed+20on+20non-secure+20connection")
        assert took < 0.8    # not a password failure: no delay
        reply = c.cmd(auth_line(2, "LOGIN", "192.0.2.70", secured=False))
        assert reply.startswith("FAIL 2 reason=plaintext")
    assert not mserver.log_lines(r"auth failed: .*rip=192\.0\.2\.70,")
    srv = make_server(conf="disable_plaintext_auth = no\n")
    with client(srv) as c:
        assert c.cmd(auth_line(1, "PLAIN", "192.0.2.71", secured=False,
                               resp=plain("alice", PASSWORD))) == \
            "OK 1 user=alice"


def test_cancel(mserver):
    with client(mserver) as c:
        assert c.cmd(auth_line(4, "LOGIN", "192.0.2.80")) == \
            "CONT 4 " + b64("Username:")
        assert c.cmd("CONT 4 " + b64("alice")) == "CONT 4 " + b64("Password:")
        reply, took = timed(c, "CONT 4 *")
        assert reply == "FAIL 4 user=alice reason=cancelled"
        assert took < 0.8
        # the connection goes on; the id is free again
        assert c.cmd(auth_line(4, "PLAIN", "192.0.2.80",
                               resp=plain("alice", PASSWORD))) == \
            "OK 4 user=alice"
    assert not mserver.log_lines(r"auth failed: .*rip=192\.0\.2\.80,")


# ------------------------------------------------------------ bad input

@pytest.mark.parametrize("garbage", [
    b"HELLO\n",
    b"\n",
    b"AUTH\n",
    b"AUTH x PLAIN service=smtp\n",
    b"AUTH -1 PLAIN service=smtp\n",
    b"AUTH 99999999999999999999999 PLAIN service=smtp\n",
    b"AUTH 1 PLAIN rip=192.0.2.90\n",                  # no service
    b"AUTH 1 PLAIN service=sm+ZZtp\n",                 # bad xtext
    b"AUTH 1 PLAIN service=smtp service=imap\n",
    b"AUTH 1 PLAIN service=smtp resp=\n",
    b"AUTH 1 PLAIN service=smtp\x00 secured\n",
    b"TICKET 1 0123456789abcdef0123456789abcdef\n",   # master only
    b"CONT 1\nAUTH 1 PLAIN service=smtp secured\n"
    b"AUTH 1 PLAIN service=smtp secured\n",            # id in use
    b"AUTH 1 PLAIN service=smtp rip=192.0.2.90 secured\n"
    b"CONT 1 " + b"QUFB" * 10 + b"\nCONT 1 QUFB\n",    # no challenge yet
], ids=lambda g: re.sub(r"[^A-Za-z0-9]+", "_", g[:30].decode("latin1")))
def test_garbage_disconnects_that_client_only(mserver, garbage):
    with client(mserver) as other, client(mserver) as c:
        c.send(garbage)
        assert c.closed(), "connection still open after %r" % garbage
        # the service and its other clients go on
        assert other.cmd(auth_line(1, "PLAIN", "192.0.2.91",
                                   resp=plain("demo", PASSWORD))) == \
            "OK 1 user=demo"
    mserver.wait_log(r"auth\[\d+\]: warning: client pid=\d+ uid=\d+: .*: "
                     r"disconnecting")
    # a request line may carry a password: never logged
    assert "QUFBQUFB" not in mserver.log()


def test_overlong_lines(mserver):
    with client(mserver) as c:
        c.send(b"AUTH 1 PLAIN service=smtp rip=192.0.2.92 secured resp=" +
               b"A" * 20000)
        assert c.closed()
    with client(mserver) as c:
        c.send(b"AUTH 1 PLAIN service=smtp resp=" + b"QUFB" * 2500 + b"\n")
        assert c.closed()
    mserver.wait_log(r"request line longer than 8192 bytes: disconnecting")
    # a big SASL response within the line bound is a failed login
    with client(mserver) as c:
        reply = c.cmd(auth_line(2, "PLAIN", "192.0.2.93",
                                resp=b64("\0a\0" + "x" * 5000)))
        assert reply.startswith("FAIL 2 "), reply
        assert c.cmd(auth_line(3, "PLAIN", "192.0.2.94", resp="!!!!")) == \
            "FAIL 3 reason=authentication+20failed"
    assert mserver.log_lines(r"auth failed: user=<>, method=PLAIN, "
                             r"rip=192\.0\.2\.94, .*base64")


def test_client_that_goes_away_mid_check(mserver):
    # many exchanges then a hang-up: nothing breaks, nothing is left
    c = client(mserver)
    c.send("".join(auth_line(i, "PLAIN", "192.0.2.95",
                             resp=plain("demo", "bad")) + "\n"
                   for i in range(1, 30)))
    c.close()
    with client(mserver) as c2:
        assert c2.cmd(auth_line(1, "PLAIN", "192.0.2.96",
                                resp=plain("demo", PASSWORD))) == \
            "OK 1 user=demo"


# ------------------------------------------------------------ tickets

def test_tickets_single_use(mserver):
    with client(mserver) as c:
        reply = c.cmd(auth_line(1, "PLAIN", "192.0.2.100", service="pop3",
                                resp=plain("alice", PASSWORD)))
        m = re.fullmatch(r"OK 1 user=alice ticket=([0-9a-f]{32})", reply)
        assert m, reply
        ticket = m.group(1)
        reply = c.cmd(auth_line(2, "PLAIN", "192.0.2.100", service="imap",
                                resp=plain("bob", PASSWORD)))
        m2 = re.fullmatch(r"OK 2 user=bob ticket=([0-9a-f]{32})", reply)
        assert m2 and m2.group(1) != ticket
        # SMTP AUTH needs no hand-off: no ticket
        assert c.cmd(auth_line(3, "PLAIN", "192.0.2.100",
                               resp=plain("alice", PASSWORD))) == \
            "OK 3 user=alice"
    home = mserver.home("alice")
    user_line = ("USER %%d user=alice uid=%d gid=%d home=%s "
                 "mail=maildir:~/Maildir" % (mserver.uid, mserver.gid,
                                             xtext(str(home))))
    with master(mserver) as m:
        assert m.cmd("TICKET 5 " + ticket) == user_line % 5
        assert m.cmd("TICKET 6 " + ticket) == "NOTFOUND 6"    # used
        assert m.cmd("TICKET 7 " + "0" * 32) == "NOTFOUND 7"
        assert m.cmd("TICKET 8 short") == "NOTFOUND 8"
        assert m.cmd("USERDB 9 alice") == user_line % 9
        assert m.cmd("USERDB 10 nosuchuser") == "NOTFOUND 10"
        assert m.cmd("TICKET 11 " + m2.group(1)).startswith(
            "USER 11 user=bob ")
    # the master socket takes no AUTH
    with master(mserver) as m:
        m.send(auth_line(1, "PLAIN", "192.0.2.100",
                         resp=plain("alice", PASSWORD)) + "\n")
        assert m.closed()


def test_sockets_and_modes(mserver):
    auth_ready(mserver)
    for name in ("auth", "auth-master"):
        st = os.stat(mserver.spool / "private" / name)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, (name, oct(st.st_mode))
        assert st.st_uid == mserver.uid
    # unprivileged mode: no chroot for login processes, no socket there
    assert not (mserver.data / "login" / "auth").exists()


# ------------------------------------------------------------ reload

def test_reload_changes_mechanisms(server):
    with client(server) as c:
        assert ["CRAM-MD5"] not in c.mechs
    server.write_config("auth_mechanisms = plain cram-md5\n")
    server.postern("reload", check=True)
    server.wait_log(r"auth\[\d+\]: configuration reloaded")

    def mechs():
        with client(server) as c:
            return c.mechs if ["CRAM-MD5"] in c.mechs else None
    assert wait_for(mechs) == [["PLAIN", "plaintext"], ["CRAM-MD5"]]


def test_auth_restarted_after_a_crash(server):
    pid = server.service_pid("auth")
    os.kill(pid, 9)
    server.wait_log(r"restarting auth in 1 s")

    def login():
        try:
            with client(server) as c:
                return c.cmd(auth_line(1, "PLAIN", "192.0.2.110",
                                       resp=plain("demo", PASSWORD)))
        except (OSError, EOFError):
            return None
    assert wait_for(login) == "OK 1 user=demo"
    assert server.service_pid("auth") != pid


# ------------------------------------------------------------ root mode

def set_password(user, password):
    subprocess.run(["chpasswd"], input=("%s:%s\n" % (user, password)).encode(),
                   check=True)


@requires_root
@pytest.mark.parametrize("passdb", ["pam", "shadow"])
def test_system_users(make_server, root_users, passdb):
    alice, bob = root_users
    set_password(alice, "Root-pw.1")
    srv = make_server(root_mode=True, system_users=root_users,
                      conf="passdb = %s\nauth_failure_delay = 1s\n" % passdb)
    auth_ready(srv)
    pid = srv.service_pid("auth")
    with open("/proc/%d/status" % pid) as f:
        uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
    assert uids == ["0"] * 4
    run = pwd.getpwnam("postern")
    st = os.stat(srv.spool / "private" / "auth")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (run.pw_uid, 0o600)
    st = os.stat(srv.spool / "private" / "auth-master")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
    st = os.stat(srv.data / "login")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
    st = os.stat(srv.data / "login" / "auth")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (run.pw_uid, 0o600)
    srv.wait_log(r"auth\[\d+\]: started \(root mode, passdb %s\)" % passdb)

    # the login processes' copy of the socket answers the same
    with AuthConn(srv.data / "login" / "auth") as c:
        assert c.handshake[-1] == "DONE"
        reply = c.cmd(auth_line(1, "PLAIN", "192.0.2.120", service="imap",
                                resp=plain(alice, "Root-pw.1")))
        m = re.fullmatch(r"OK 1 user=%s ticket=([0-9a-f]{32})" % alice,
                         reply)
        assert m, reply
        r1, t1 = timed(c, auth_line(2, "PLAIN", "192.0.2.121",
                                    resp=plain(alice, "wrong")))
        r2, t2 = timed(c, auth_line(3, "PLAIN", "192.0.2.122",
                                    resp=plain("pstnosuchuser", "wrong")))
        assert r1 == "FAIL 2 user=%s reason=authentication+20failed" % alice
        assert r2 == ("FAIL 3 user=pstnosuchuser "
                      "reason=authentication+20failed")
        # our own delay, not PAM's two seconds on top of it
        assert 0.9 <= t1 < 2.5 and 0.9 <= t2 < 2.5, (t1, t2)
        # a user without a password (bob) cannot log in
        assert c.cmd(auth_line(4, "PLAIN", "192.0.2.123",
                               resp=plain(bob, ""))).startswith("FAIL 4 ")
    pw = pwd.getpwnam(alice)
    with master(srv) as mc:
        assert mc.cmd("TICKET 1 " + m.group(1)) == (
            "USER 1 user=%s uid=%d gid=%d home=%s mail=maildir:~/Maildir" %
            (alice, pw.pw_uid, pw.pw_gid, xtext(pw.pw_dir)))
    # the failure lines, as fail2ban reads them
    srv.wait_log(r"auth failed: user=<%s>, method=PLAIN, rip=192\.0\.2\.121, "
                 r"lip=127\.0\.0\.1, service=smtp, "
                 r"reason=authentication failed" % alice)
