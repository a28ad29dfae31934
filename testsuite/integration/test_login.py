"""
The hand-off of a logged-in session (DESIGN §12, doc/internals.md): a
login on pop3 and pop3s reaches the user's pop3 mail process, pipelined
bytes go along, a TLS session is relayed intact (2 MB), mail processes
run one per uid as that uid (root mode), are shared by sessions of the
same uid, leave when idle and are not restarted, and a killed one closes
its clients' connections without breaking later logins.  Also the login
process itself: its chroot and uid (root mode), the per-IP cap, its log
lines, reload replacing it without cutting a relayed session, and
posternd without imap-login.

POP3 commands themselves are test_pop3.py's.
"""
import hashlib
import os
import poplib
import pwd
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time

import pytest

from conftest import (ENV, PASSWORD, WAIT, make_msg, proc_alive, proc_uids,
                      requires_root, service_build_path, wait_for)

LOGIN_BINARIES = ("pop3-login", "pop3", "imap-login", "imap")


@pytest.fixture(scope="module", autouse=True)
def login_binaries():
    """The login and mail processes next to the other services, should
    the harness not link them."""
    ENV.setup()
    for name in LOGIN_BINARIES:
        src = service_build_path(name)
        if src.is_dir():
            src = src / name        # built as pop3/pop3, like auth/auth
        if not (src.is_file() and os.access(src, os.X_OK)):
            if name.startswith("pop3"):
                pytest.skip("%s not built" % name)
            continue                # the IMAP test skips itself
        dst = ENV.libexec / name
        if dst.is_file() and os.access(dst, os.X_OK):
            continue
        if dst.is_symlink():
            dst.unlink()
        if ENV.staged:
            shutil.copy2(src, dst)
        else:
            dst.symlink_to(src)


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def pop_login(srv, user, password=PASSWORD, tls=False):
    if tls:
        p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port, timeout=WAIT,
                            context=client_ctx())
    else:
        p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=WAIT)
    p.user(user)
    resp = p.pass_(password)
    assert resp.startswith(b"+OK"), resp
    return p


def login_lines(srv, user):
    return srv.log_lines(r"pop3-login\[\d+\]: Login: user=<%s>, " %
                         re.escape(user))


def mpid_of(srv, user, count=1):
    """The mail process pid of the count-th login of user (log line)."""
    lines = srv.wait_log(r"pop3-login\[\d+\]: Login: user=<%s>, .*mpid="
                         % re.escape(user), count=count)
    return int(re.search(r"mpid=(\d+)", lines[count - 1]).group(1))


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def raw_session(port, data, tls=False):
    """Connect, read the greeting, send data in one write and read
    everything until the server closes.  Returns the lines after the
    greeting."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    if tls:
        s = client_ctx().wrap_socket(s)
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")
    s.sendall(data)
    out = f.read()
    s.close()
    return out.decode("utf-8", "replace").split("\r\n")


# ------------------------------------------------------------------ basics

SERVER_OPTIONS = {"pop3": True}


@pytest.mark.parametrize("tls", [False, True], ids=["pop3", "pop3s"])
def test_login_reaches_mail_process(mserver, tls):
    user = "alice" if tls else "bob"
    p = pop_login(mserver, user, tls=tls)
    try:
        # STAT is answered by the mail process, never by pop3-login.
        assert p.stat() == (0, 0)
    finally:
        p.quit()
    line = login_lines(mserver, user)[-1]
    assert re.search(r"Login: user=<%s>, method=PLAIN, rip=127\.0\.0\.1, "
                     r"lip=127\.0\.0\.1, mpid=\d+" % user, line), line
    assert line.endswith(", TLS") == tls, line
    mpid = mpid_of(mserver, user, len(login_lines(mserver, user)))
    # The mail process is pop3 with our config, a child of posternd.
    args = cmdline(mpid)
    assert os.path.basename(args[0]) == "pop3", args
    assert str(mserver.conf) in args
    with open("/proc/%d/stat" % mpid) as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == \
            mserver.proc.pid


@pytest.mark.parametrize("tls", [False, True], ids=["pop3", "pop3s"])
def test_pipelined_after_pass_reach_mail_process(mserver, tls):
    """Bytes the login process read behind PASS go along (pre=)."""
    port = mserver.pop3s_port if tls else mserver.pop3_port
    lines = raw_session(port, b"USER carol\r\nPASS %s\r\nSTAT\r\nNOOP\r\n"
                        b"QUIT\r\n" % PASSWORD.encode(), tls=tls)
    assert lines[0] == "+OK", lines
    assert lines[1].startswith("+OK"), lines          # logged in
    assert lines[2] == "+OK 0 0", lines               # STAT
    assert lines[3].startswith("+OK"), lines          # NOOP
    assert lines[4].startswith("+OK"), lines          # QUIT
    assert lines[5:] == [""], lines


def test_tls_relay_carries_2mb_intact(mserver):
    user = "demo"
    # 2 MB of lines that differ from each other: any lost, doubled or
    # reordered block shows.
    body = "".join(hashlib.sha256(b"%d" % i).hexdigest() + "\n"
                   for i in range(2 * 1024 * 1024 // 65 + 1))
    mserver.send("alice@example.test", "%s@example.test" % user,
                 make_msg("relay-2mb", body=body))
    stored = mserver.wait_token(user, "relay-2mb")[0]
    assert len(stored) > 2 * 1024 * 1024
    p = pop_login(mserver, user, tls=True)
    try:
        count, size = p.stat()
        assert count == 1
        resp, lines, octets = p.retr(1)
        assert resp.startswith(b"+OK")
    finally:
        p.quit()
    got = b"\n".join(lines) + b"\n"
    assert hashlib.sha256(got).hexdigest() == \
        hashlib.sha256(stored).hexdigest()
    assert size == octets


@pytest.mark.parametrize("tls", [False, True], ids=["imap", "imaps"])
def test_imap_login_tag_answered_by_mail_process(make_server, tls):
    """The tag of the IMAP LOGIN goes along (tag=): the imap process
    answers it, and the commands pipelined behind it."""
    if not os.access(str(ENV.libexec / "imap"), os.X_OK):
        pytest.skip("imap not built")
    srv = make_server(imap=True)
    port = srv.imaps_port if tls else srv.imap_port
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    if tls:
        s = client_ctx().wrap_socket(s)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(b"x1 LOGIN alice %s\r\nx2 SELECT INBOX\r\nx3 LOGOUT\r\n"
              % PASSWORD.encode())
    lines = f.read().decode().split("\r\n")
    s.close()
    tagged = [l.split(" ", 2)[:2] for l in lines if l.startswith("x")]
    assert tagged == [["x1", "OK"], ["x2", "OK"], ["x3", "OK"]], lines
    line = srv.wait_log(r"imap-login\[\d+\]: Login: user=<alice>, "
                        r"method=PLAIN, .*mpid=(\d+)")[-1]
    mpid = int(re.search(r"mpid=(\d+)", line).group(1))
    assert os.path.basename(cmdline(mpid)[0]) == "imap"


def test_log_lines_of_clients_that_did_not_log_in(mserver):
    s = socket.create_connection(("127.0.0.1", mserver.pop3_port),
                                 timeout=WAIT)
    assert s.makefile("rb").readline().startswith(b"+OK")
    s.close()
    mserver.wait_log(r"pop3-login\[\d+\]: Disconnected \(no auth attempts "
                     r"in \d+ secs\): user=<>, rip=127\.0\.0\.1, "
                     r"lip=127\.0\.0\.1$")
    p = poplib.POP3_SSL("127.0.0.1", mserver.pop3s_port, timeout=WAIT,
                        context=client_ctx())
    p.user("bob")
    with pytest.raises(poplib.error_proto):
        p.pass_("wrong-password")
    p.close()
    mserver.wait_log(r"pop3-login\[\d+\]: Disconnected \(auth failed, 1 "
                     r"attempts\): user=<bob>, method=PLAIN, "
                     r"rip=127\.0\.0\.1, lip=127\.0\.0\.1, TLS$")


# ------------------------------------------------ mail process lifetime

def test_same_uid_shares_one_mail_process(make_server):
    """Unprivileged mode: every user has posternd's uid, so sessions of
    different users, at the same time or one after the other, share one
    mail process."""
    srv = make_server(pop3=True)
    a = pop_login(srv, "alice")
    b = pop_login(srv, "bob", tls=True)
    try:
        assert a.stat() == (0, 0) and b.stat() == (0, 0)
    finally:
        a.quit()
        b.quit()
    pid = mpid_of(srv, "alice")
    assert mpid_of(srv, "bob") == pid
    assert proc_uids(pid)[0] == srv.uid
    c = pop_login(srv, "alice")
    c.quit()
    assert mpid_of(srv, "alice", 2) == pid


def test_idle_mail_process_exits_and_is_not_restarted(make_server):
    srv = make_server(pop3=True, conf="mail_process_max_idle = 2s\n")
    p = pop_login(srv, "alice")
    pid = mpid_of(srv, "alice")
    # Busy: a session keeps it, however long.
    time.sleep(3)
    assert proc_alive(pid)
    assert p.stat() == (0, 0)
    p.quit()
    assert wait_for(lambda: not proc_alive(pid), timeout=15), \
        "mail process %d still running\n%s" % (pid, srv.log_tail())
    time.sleep(1)
    assert not any(proc_alive(q) and os.path.basename(cmdline(q)[0]) ==
                   "pop3" for q in srv_children(srv))
    assert not srv.log_lines(r"warning: process \S+/pop3 pid %d" % pid)
    # The next login starts a new one.
    p = pop_login(srv, "alice")
    p.quit()
    assert mpid_of(srv, "alice", 2) != pid


def srv_children(srv):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == \
                        srv.proc.pid:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


@pytest.mark.parametrize("tls", [False, True], ids=["pop3", "pop3s"])
def test_killed_mail_process(make_server, tls):
    srv = make_server(pop3=True)
    p = pop_login(srv, "bob", tls=tls)
    assert p.stat() == (0, 0)
    pid = mpid_of(srv, "bob")
    os.kill(pid, signal.SIGKILL)
    # The client sees its connection end, not a hang.
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        p.stat()
        p.stat()
    p.close()
    srv.wait_log(r"warning: process \S+/pop3 pid %d \(user bob\) killed by "
                 r"signal 9" % pid)
    # A new login works, with a new process.
    q = pop_login(srv, "bob", tls=tls)
    assert q.stat() == (0, 0)
    q.quit()
    new = mpid_of(srv, "bob", 2)
    assert new != pid and proc_alive(new)


# ------------------------------------------------------- login process

def test_per_ip_connection_cap(make_server):
    srv = make_server(pop3=True, conf="login_max_connections_per_ip = 2\n")
    held = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", srv.pop3_port),
                                     timeout=WAIT)
        assert s.recv(100).startswith(b"+OK")
        held.append(s)
    s = socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=WAIT)
    assert s.recv(100) == b""       # closed without a greeting
    s.close()
    srv.wait_log(r"Disconnected: Too many connections from this IP "
                 r"\(login_max_connections_per_ip=2\)")
    held.pop().close()

    def greeted():
        with socket.create_connection(("127.0.0.1", srv.pop3_port),
                                      timeout=WAIT) as s:
            return s.recv(100).startswith(b"+OK")
    assert wait_for(greeted)
    for s in held:
        s.close()


def pop3_login_pids(srv):
    """Running pop3-login pids of $data_directory/status (there is one
    line per login process, pop3_login_process_min_avail of them)."""
    try:
        text = (srv.data / "status").read_text()
    except FileNotFoundError:
        return set()
    return {int(f[1]) for f in (l.split() for l in text.splitlines())
            if len(f) >= 2 and f[0] == "pop3-login" and f[1].isdigit()
            and int(f[1]) > 0}


def test_reload_replaces_login_process_keeps_tls_session(make_server):
    srv = make_server(pop3=True)
    srv.service_pid("pop3-login")
    olds = pop3_login_pids(srv)
    p = pop_login(srv, "alice", tls=True)
    assert p.stat() == (0, 0)
    # The login process that relays alice's TLS session.
    m = re.search(r"pop3-login\[(\d+)\]", login_lines(srv, "alice")[-1])
    old = int(m.group(1))
    assert old in olds
    r = srv.postern("reload")
    assert r.returncode == 0, r.out + r.err
    news = wait_for(lambda: (lambda st: st if st and not st & olds
                             else None)(pop3_login_pids(srv)))
    assert news and all(proc_alive(x) for x in news), srv.log_tail()
    # New connections go to the new processes ...
    q = pop_login(srv, "bob", tls=True)
    q.quit()
    m = re.search(r"pop3-login\[(\d+)\]: Login: user=<bob>",
                  login_lines(srv, "bob")[-1])
    assert m and int(m.group(1)) in news
    # ... while the old one still relays the session it had.
    assert proc_alive(old)
    assert p.stat() == (0, 0)
    p.quit()
    assert wait_for(lambda: not proc_alive(old)), srv.log_tail()
    assert not srv.log_lines(r"warning: process \S+/pop3-login")


def test_stop_with_relayed_session(make_server):
    srv = make_server(pop3=True)
    p = pop_login(srv, "alice", tls=True)
    assert p.stat() == (0, 0)
    t0 = time.monotonic()
    r = srv.stop()
    assert r is not None and r.returncode == 0, r and (r.out + r.err)
    assert time.monotonic() - t0 < 25
    with pytest.raises((poplib.error_proto, OSError, EOFError)):
        p.stat()
    p.close()


def test_without_imap_login(make_server):
    """posternd serves what it has: no imap-login in daemon_directory is
    logged once and its listeners are not bound; the rest works."""
    srv = make_server(pop3=True, imap=True, start=False)
    libexec = srv.dir / "libexec"
    srv.mkdir(libexec)
    for name in os.listdir(str(ENV.libexec)):
        if name != "imap-login":
            os.symlink(os.path.realpath(str(ENV.libexec / name)),
                       str(libexec / name))
    srv.write_config("daemon_directory = %s\n" % libexec)
    srv.start()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", srv.imap_port), timeout=5)
    p = pop_login(srv, "alice")
    p.quit()
    assert "imap-login" not in srv.status()
    r = srv.postern("reload")
    assert r.returncode == 0, r.out + r.err
    srv.wait_log(r"reload -- version")
    missing = srv.log_lines(r"not starting imap: \S+/imap-login: No such "
                            r"file or directory")
    assert len(missing) == 1, missing


# ------------------------------------------------------------ root mode

def set_passwords(users):
    subprocess.run(["chpasswd"], input="".join(
        "%s:%s\n" % (u, PASSWORD) for u in users).encode(), check=True)


@requires_root
def test_root_mode_one_process_per_uid(make_server, root_users):
    set_passwords(root_users)
    alice, bob = root_users
    srv = make_server(root_mode=True, system_users=root_users, pop3=True)
    a = pop_login(srv, alice)
    b = pop_login(srv, bob, tls=True)
    try:
        assert a.stat() == (0, 0) and b.stat() == (0, 0)
        pa, pb = mpid_of(srv, alice), mpid_of(srv, bob)
        assert pa != pb
        for user, pid in ((alice, pa), (bob, pb)):
            pw = pwd.getpwnam(user)
            assert proc_uids(pid) == (pw.pw_uid,) * 4, user
            with open("/proc/%d/status" % pid) as f:
                gids = [l for l in f if l.startswith("Gid:")][0].split()
            assert all(int(g) == pw.pw_gid for g in gids[1:5]), gids
        # The same user again: the same process.  (POP3 gives the
        # maildrop to one session at a time, so the second login may
        # be told [IN-USE]; it is the same process that says so.)
        c = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=WAIT)
        c.user(alice)
        try:
            c.pass_(PASSWORD)
            c.quit()
        except poplib.error_proto as e:
            assert b"IN-USE" in e.args[0], e
        c.close()
        assert mpid_of(srv, alice, 2) == pa
    finally:
        a.quit()
        b.quit()


@requires_root
def test_root_mode_login_process_chrooted(make_server, root_users):
    srv = make_server(root_mode=True, system_users=root_users, pop3=True)
    pid = srv.service_pid("pop3-login")
    run = pwd.getpwnam("postern")
    assert wait_for(lambda: proc_uids(pid) == (run.pw_uid,) * 4)
    root = os.readlink("/proc/%d/root" % pid)
    assert os.path.realpath(root) == os.path.realpath(str(srv.data /
                                                          "login"))
    st = os.stat(root)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755
    assert os.listdir(root) == ["auth"]
    assert stat.S_ISSOCK(os.lstat(os.path.join(root, "auth")).st_mode)
    # It works from inside: a login through the auth socket there.
    set_passwords(root_users)
    p = pop_login(srv, root_users[0], tls=True)
    assert p.stat() == (0, 0)
    p.quit()
    # The auth service restarts and binds a new socket there: the
    # chrooted process finds it again.
    old = srv.service_pid("auth")
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: (lambda st: st and st[0] != old and
                             proc_alive(st[0]))(srv.status().get("auth")))

    def login_works():
        try:
            q = pop_login(srv, root_users[1])
        except (poplib.error_proto, OSError):
            return False
        q.quit()
        return True
    assert wait_for(login_works), srv.log_tail()
    assert srv.service_pid("pop3-login") == pid


@requires_root
def test_root_mode_uid_below_first_valid_uid_refused(make_server,
                                                     root_users):
    set_passwords(root_users)
    alice = root_users[0]
    srv = make_server(root_mode=True, system_users=root_users, pop3=True,
                      conf="first_valid_uid = 2000000000\n")
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=WAIT)
    p.user(alice)
    with pytest.raises(poplib.error_proto) as e:
        p.pass_(PASSWORD)
    assert e.value.args[0].startswith(b"-ERR [SYS/TEMP]"), e.value
    # Still in the AUTHORIZATION state: the connection goes on.
    assert p.capa()
    p.quit()
    srv.wait_log(r"error: pop3: user %s has uid %d .* below "
                 r"first_valid_uid" % (alice, pwd.getpwnam(alice).pw_uid))
    assert not login_lines(srv, alice)
