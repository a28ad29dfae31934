"""
Several login processes per protocol (imap_login_process_min_avail,
pop3_login_process_min_avail): posternd starts that many imap-login and
pop3-login processes on the same listeners, and what a user sees is the
same as with one: logins work whichever process accepts,
login_max_connections_per_ip holds for the service (counted across the
processes), a killed process is replaced and what it counted is
forgotten, reload replaces every process while the TLS sessions they
relay go on, and stop ends them all.
"""
import os
import poplib
import re
import signal
import socket
import ssl
import time

from conftest import PASSWORD, WAIT, pids_with_arg, proc_alive, wait_for


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def login_pids(srv, name):
    """The processes named name of this server (argv[0] basename)."""
    out = []
    for pid in pids_with_arg(str(srv.conf)):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv0 = f.read().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(argv0) == name.encode():
            out.append(pid)
    return sorted(out)


def status_pids(srv, name):
    """Running pids of name in $data_directory/status (one line each)."""
    try:
        text = (srv.data / "status").read_text()
    except FileNotFoundError:
        return []
    return sorted(int(f[1]) for f in (l.split() for l in text.splitlines())
                  if len(f) >= 4 and f[0] == name and f[1] != "0")


def imap_greeted(port, tls=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    if tls:
        s = client_ctx().wrap_socket(s)
    data = s.recv(200)
    if not data.startswith(b"* OK"):
        s.close()
        return None
    return s


def test_n_processes_serve_and_share_the_per_ip_cap(make_server):
    srv = make_server(imap=True, pop3=True,
                      conf="imap_login_process_min_avail = 3\n"
                           "pop3_login_process_min_avail = 2\n"
                           "login_max_connections_per_ip = 6\n")
    assert wait_for(lambda: len(status_pids(srv, "imap-login")) == 3)
    assert wait_for(lambda: len(status_pids(srv, "pop3-login")) == 2)
    assert login_pids(srv, "imap-login") == status_pids(srv, "imap-login")
    # Logins work, whichever process takes them.
    for i in range(6):
        s = imap_greeted(srv.imap_port)
        s.sendall(b'a LOGIN "alice" "%s"\r\nb LOGOUT\r\n' % PASSWORD.encode())
        data = b""
        while b"b OK" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert b"a OK" in data, data
        s.close()
    # Six connections held (over the three processes), the seventh is
    # refused: the cap is the service's.
    held = []
    for _ in range(6):
        s = imap_greeted(srv.imap_port)
        assert s is not None
        held.append(s)
    s = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=WAIT)
    assert s.recv(100) == b""
    s.close()
    srv.wait_log(r"imap-login\[\d+\]: Disconnected: Too many connections "
                 r"from this IP \(login_max_connections_per_ip=6\)")
    # Their ends are seen by every process before some are stopped.
    pat = r"imap-login\[\d+\]: Disconnected \(no auth attempts"
    n0 = len(srv.log_lines(pat))
    for s in held:
        s.close()
    srv.wait_log(pat, count=n0 + len(held))
    # Made certain to span processes: with all but one stopped, that
    # one takes the connections; then another one alone.  The last
    # one refuses the seventh though it holds only three itself.
    pids = status_pids(srv, "imap-login")
    held = []
    try:
        for turn, pid in enumerate(pids[:2]):
            for other in pids:
                os.kill(other, signal.SIGCONT if other == pid
                        else signal.SIGSTOP)

            def got_one():
                s = imap_greeted(srv.imap_port)
                if s is not None:
                    held.append(s)
                return s is not None
            for _ in range(3):
                assert wait_for(got_one), srv.log_tail()
        s = socket.create_connection(("127.0.0.1", srv.imap_port),
                                     timeout=WAIT)
        assert s.recv(100) == b""
        s.close()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    # TLS connections count with them (the same processes).
    s = socket.create_connection(("127.0.0.1", srv.imaps_port), timeout=WAIT)
    try:
        t = client_ctx().wrap_socket(s)
        assert t.recv(100) == b""
    except (ssl.SSLError, ConnectionResetError, OSError):
        pass
    s.close()
    held.pop().close()
    assert wait_for(lambda: (lambda s: s is not None and (s.close() or
                                                          True))(
        imap_greeted(srv.imap_port)))
    # POP3 has its own count.
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=WAIT)
    p.user("bob")
    p.pass_(PASSWORD)
    assert p.stat() == (0, 0)
    p.quit()
    for s in held:
        s.close()


def test_killed_process_is_replaced_and_its_counts_forgotten(make_server):
    srv = make_server(imap=True,
                      conf="imap_login_process_min_avail = 2\n"
                           "login_max_connections_per_ip = 4\n")
    assert wait_for(lambda: len(status_pids(srv, "imap-login")) == 2)
    old = status_pids(srv, "imap-login")
    # Fill the cap, then kill every process holding connections.
    held = [imap_greeted(srv.imap_port) for _ in range(4)]
    assert all(held)
    assert imap_greeted(srv.imap_port) is None
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    for s in held:
        s.close()
    assert wait_for(lambda: (lambda p: len(p) == 2 and not set(p) & set(old))(
        status_pids(srv, "imap-login")), timeout=30), srv.log_tail()
    # The dead processes' counts are gone: four fit again.

    def four_fit():
        got = [imap_greeted(srv.imap_port) for _ in range(4)]
        ok = all(got)
        for s in got:
            if s is not None:
                s.close()
        return ok
    assert wait_for(four_fit, timeout=30), srv.log_tail()


def test_reload_replaces_all_and_stop_ends_all(make_server):
    srv = make_server(imap=True, conf="imap_login_process_min_avail = 3\n")
    assert wait_for(lambda: len(status_pids(srv, "imap-login")) == 3)
    old = status_pids(srv, "imap-login")
    # A TLS session relayed by one of them, logged in.
    t = imap_greeted(srv.imaps_port, tls=True)
    t.sendall(b'a LOGIN "alice" "%s"\r\n' % PASSWORD.encode())
    data = b""
    while b"a OK" not in data:
        chunk = t.recv(4096)
        assert chunk, data
        data += chunk
    r = srv.postern("reload")
    assert r.returncode == 0, r.out + r.err
    assert wait_for(lambda: (lambda p: len(p) == 3 and not set(p) & set(old))(
        status_pids(srv, "imap-login"))), srv.log_tail()
    new = status_pids(srv, "imap-login")
    # New connections go to the new processes ...
    s = imap_greeted(srv.imap_port)
    s.sendall(b'b LOGIN "bob" "%s"\r\n' % PASSWORD.encode())
    data = b""
    while b"b OK" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    s.close()
    line = srv.wait_log(r"imap-login\[\d+\]: Login: user=<bob>")[-1]
    assert int(re.search(r"imap-login\[(\d+)\]", line).group(1)) in new
    # ... the old ones without clients have gone, the one relaying the
    # TLS session stays for it.
    assert wait_for(lambda: sum(proc_alive(p) for p in old) == 1)
    t.sendall(b"n NOOP\r\n")
    data = b""
    while b"n OK" not in data:
        chunk = t.recv(4096)
        assert chunk, data
        data += chunk
    t.sendall(b"o LOGOUT\r\n")
    t.close()
    assert wait_for(lambda: not any(proc_alive(p) for p in old))
    # Stop ends every process, none has to be killed.
    r = srv.postern("stop")
    assert r.returncode == 0, r.out + r.err
    assert wait_for(lambda: not any(proc_alive(p) for p in new))
    assert srv.proc.wait(timeout=WAIT) == 0
    assert not srv.log_lines(r"warning: process \S+/imap-login")
    assert not srv.log_lines(r"did not stop")
