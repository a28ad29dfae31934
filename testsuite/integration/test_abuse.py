"""
Abuse under load (DESIGN §9): slowloris clients -- many connections that
each send a byte every few seconds -- and thousands of idle connections
from one address are bounded by the idle timeout and the per-address
caps (smtpd_client_connection_count_limit, login_max_connections_per_ip)
while a client from another address is still served, and the memory of
every Postern process stays bounded (measured before and after; printed).

Each test runs in well under a minute.  The slow clients come from
127.0.0.1; the well-behaved one from 127.0.0.2 (Linux routes all of
127.0.0.0/8 to lo), which $mynetworks names, so only 127.0.0.1 is capped
on SMTP.
"""
import errno
import os
import resource
import select
import smtplib
import socket
import time

import pytest

from conftest import PASSWORD, make_msg, pids_with_arg

SLOW = 1000            # slowloris connections per protocol
IDLE = 10000           # idle connections
CAP = 50               # the default per-address caps
GOOD = "127.0.0.2"

CONF = ("mynetworks = 127.0.0.2/32\n"
        "smtpd_timeout = 2s\n")


@pytest.fixture(scope="module", autouse=True)
def enough_fds():
    """IDLE client sockets plus the test's own files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = IDLE + 1000
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def memory(srv):
    """{pid: (name, VmRSS kB)} of every process of srv."""
    out = {}
    for pid in pids_with_arg(str(srv.conf)):
        try:
            with open("/proc/%d/status" % pid) as f:
                st = dict(l.split(":", 1) for l in f if ":" in l)
            out[pid] = (st["Name"].strip(),
                        int(st.get("VmRSS", "0 kB").split()[0]))
        except (OSError, KeyError, ValueError):
            pass
    return out


def report(label, mem):
    print("%s: %s (total %d kB)" % (
        label, ", ".join("%s[%d]=%dkB" % (n, p, kb)
                         for p, (n, kb) in sorted(mem.items())),
        sum(kb for _, kb in mem.values())))


def check_memory(before, after, slack_kb=64 * 1024):
    """No process grew by more than slack_kb (the sockets and sessions of
    the caps, not one buffer per refused connection)."""
    for pid, (name, kb) in after.items():
        if pid in before:
            grown = kb - before[pid][1]
            assert grown < slack_kb, "%s[%d] grew by %d kB" % (name, pid,
                                                               grown)
    assert sum(kb for _, kb in after.values()) < 1024 * 1024


def connect_many(port, n, src="127.0.0.1"):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    return socks


def poll_state(socks, state):
    """Read what has arrived: state[s] = bytes so far, None once closed."""
    for s in socks:
        if state.get(s, b"") is None:
            continue
        try:
            data = s.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            state[s] = None
        else:
            state[s] = state.get(s, b"") + data


def held(socks, state, ok_prefix):
    return [s for s in socks
            if state.get(s) is not None and state[s].startswith(ok_prefix)]


def close_all(socks):
    for s in socks:
        s.close()


def trickle(socks, state, seconds, interval):
    """Send one byte on every open connection each interval seconds."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in socks:
            if state.get(s, b"") is None:
                continue
            try:
                s.send(b"N")
            except OSError:
                state[s] = None
        time.sleep(interval)
        poll_state(socks, state)


# ------------------------------------------------- the client that must win

def good_smtp(srv, tag):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=20,
                      source_address=(GOOD, 0)) as s:
        s.ehlo("good.example.test")
        s.sendmail("alice@example.test", ["demo@example.test"],
                   make_msg(tag))
    srv.wait_token("demo", tag)


def _lines(sock, want, timeout=20):
    sock.settimeout(timeout)
    buf = b""
    while want not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("closed; got %r" % buf)
        buf += chunk
    return buf


def good_imap(srv):
    s = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=20,
                                 source_address=(GOOD, 0))
    try:
        assert _lines(s, b"\r\n").startswith(b"* OK")
        s.sendall(b'a LOGIN demo "%s"\r\n' % PASSWORD.encode())
        assert b"a OK" in _lines(s, b"a ")
        s.sendall(b"b SELECT INBOX\r\n")
        assert b"b OK" in _lines(s, b"b ")
        s.sendall(b"c LOGOUT\r\n")
        _lines(s, b"c OK")
    finally:
        s.close()


def good_pop3(srv):
    s = socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=20,
                                 source_address=(GOOD, 0))
    try:
        assert _lines(s, b"\r\n").startswith(b"+OK")
        s.sendall(b"USER demo\r\n")
        assert _lines(s, b"\r\n").startswith(b"+OK")
        s.sendall(b"PASS %s\r\n" % PASSWORD.encode())
        assert _lines(s, b"\r\n").startswith(b"+OK"), "PASS"
        s.sendall(b"STAT\r\nQUIT\r\n")
        assert b"+OK" in _lines(s, b"\r\n")
    finally:
        s.close()


# ---------------------------------------------------------------- tests

def test_smtp_slowloris(make_server):
    """A byte every 3 s against smtpd_timeout = 2s: every slow connection
    is closed by the timeout; at most CAP of them ever got a greeting."""
    srv = make_server(conf=CONF)
    before = memory(srv)
    t0 = time.monotonic()
    socks = connect_many(srv.smtp_port, SLOW)
    state = {}
    time.sleep(1)
    poll_state(socks, state)
    greeted = held(socks, state, b"220")
    print("%d connections, %d greeted with 220" % (len(socks), len(greeted)))
    assert 0 < len(greeted) <= CAP, len(greeted)
    good_smtp(srv, "served-during-slowloris")
    during = memory(srv)
    trickle(socks, state, 8, 3)
    poll_state(socks, state)
    still = [s for s in socks if state.get(s, b"") is not None]
    print("open after 8 s of trickle: %d; %.1f s" %
          (len(still), time.monotonic() - t0))
    assert still == [], "%d slow connections outlived smtpd_timeout" % \
        len(still)
    close_all(socks)
    good_smtp(srv, "served-after-slowloris")
    after = memory(srv)
    report("before", before)
    report("during", during)
    report("after", after)
    check_memory(before, during)
    check_memory(before, after)
    assert srv.log_lines(r"smtpd_client_connection_count_limit")


@pytest.mark.parametrize("proto", ["imap", "pop3"])
def test_login_slowloris(make_server, proto):
    """IMAP and POP3 before login: a byte every 2 s keeps a connection
    alive, so the cap per address is what bounds them; another address
    still logs in."""
    srv = make_server(conf=CONF, **{proto: True})
    port = srv.imap_port if proto == "imap" else srv.pop3_port
    ok = b"* OK" if proto == "imap" else b"+OK"
    before = memory(srv)
    socks = connect_many(port, SLOW)
    state = {}
    time.sleep(1)
    poll_state(socks, state)
    trickle(socks, state, 6, 2)
    alive = held(socks, state, ok)
    print("%d connections, %d held open" % (len(socks), len(alive)))
    assert 0 < len(alive) <= CAP, len(alive)
    if proto == "imap":
        good_imap(srv)
    else:
        good_pop3(srv)
    during = memory(srv)
    close_all(socks)
    time.sleep(1)
    after = memory(srv)
    report("before", before)
    report("during", during)
    report("after", after)
    check_memory(before, during)
    check_memory(before, after)


def test_idle_connections(make_server):
    """IDLE connections from one address to SMTP and IMAP: at most CAP
    are kept on each, the rest are turned away at once, and a client
    from another address is served meanwhile."""
    # The default smtpd_timeout (300 s): idle connections stay.
    srv = make_server(conf="mynetworks = 127.0.0.2/32\n", imap=True)
    before = memory(srv)
    t0 = time.monotonic()
    half = IDLE // 2
    smtp_socks = connect_many(srv.smtp_port, half)
    imap_socks = connect_many(srv.imap_port, IDLE - half)
    print("%d + %d connections in %.1f s" % (len(smtp_socks),
                                             len(imap_socks),
                                             time.monotonic() - t0))
    assert len(smtp_socks) + len(imap_socks) > IDLE * 0.9
    state = {}
    time.sleep(1.5)
    poll_state(smtp_socks + imap_socks, state)
    good_smtp(srv, "served-beside-idle")
    good_imap(srv)
    poll_state(smtp_socks + imap_socks, state)
    s_held = held(smtp_socks, state, b"220")
    i_held = held(imap_socks, state, b"* OK")
    print("held: smtp %d, imap %d" % (len(s_held), len(i_held)))
    assert 0 < len(s_held) <= CAP, len(s_held)
    assert 0 < len(i_held) <= CAP, len(i_held)
    during = memory(srv)
    close_all(smtp_socks + imap_socks)
    time.sleep(1)
    after = memory(srv)
    report("before", before)
    report("during", during)
    report("after", after)
    check_memory(before, during)
    check_memory(before, after)
    print("total %.1f s" % (time.monotonic() - t0))
