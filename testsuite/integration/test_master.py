"""
posternd and the postern control commands: status, supervision (a
killed service comes back), reload without dropping sessions, stop
finishing in-flight transactions, and clear errors at start.
"""
import os
import re
import signal
import socket
import subprocess

import pytest

from conftest import (ENV, HOSTNAME, free_port, make_msg, pids_with_arg,
                      proc_alive, wait_for)


def test_status(server):
    st = wait_for(lambda: (lambda s: s if all(k in s for k in
                                              ("smtpd", "qmgr", "local"))
                           else None)(server.status()))
    assert st, server.status()
    r = server.postern("status")
    assert r.returncode == 0, r.out + r.err
    assert "running" in r.out
    assert str(server.proc.pid) in r.out
    for name in ("smtpd", "qmgr", "local"):
        pid = st[name][0]
        assert proc_alive(pid), name
        assert re.search(r"\b%s\b.*\b%d\b" % (name, pid), r.out), r.out
    server.stop()
    r = server.postern("status")
    assert r.returncode == 3, (r.returncode, r.out)


@pytest.mark.parametrize("service", ["smtpd", "qmgr", "local"])
def test_killed_service_is_restarted(server, service):
    old = server.service_pid(service)
    os.kill(old, signal.SIGKILL)
    server.wait_log(r"warning: process \S*/%s pid %d killed by signal 9" %
                    (service, old))
    new = wait_for(lambda: (lambda p: p if p and p != old else None)(
        server.status().get(service, (None,))[0]))
    assert new and proc_alive(new), server.log_tail()
    server.wait_ready()
    server.send("alice@example.test", "demo@example.test",
                make_msg("after-%s-restart" % service))
    server.wait_token("demo", "after-%s-restart" % service)


def test_reload_keeps_sessions_and_uses_new_config(server):
    old = server.raw()
    code, lines = old.reply()
    assert lines == ["%s ESMTP Postern" % HOSTNAME]
    old.expect(250, "EHLO client.example.test\r\n")
    old.expect(250, "MAIL FROM:<alice@example.test>\r\n")

    server.write_config("smtpd_banner = $myhostname ESMTP reloaded-banner\n")
    r = server.postern("reload")
    assert r.returncode == 0, r.out + r.err
    server.wait_log(r"reload -- version \S+, configuration %s" %
                    re.escape(str(server.conf)))

    def banner():
        with socket.create_connection(("127.0.0.1", server.smtp_port),
                                      timeout=20) as s:
            line = s.makefile("rb").readline().decode().strip()
            s.sendall(b"QUIT\r\n")
            return line if "reloaded-banner" in line else None
    assert wait_for(banner) == "220 %s ESMTP reloaded-banner" % HOSTNAME

    # the session opened before the reload goes on
    old.expect(250, "RCPT TO:<demo@example.test>\r\n")
    old.expect(354, "DATA\r\n")
    old.expect(250, "Subject: across-reload\r\n\r\nstill here\r\n.\r\n")
    old.expect(221, "QUIT\r\n")
    server.wait_token("demo", "across-reload")


def test_reload_refuses_broken_config(server):
    server.write_config("message_size_limit = lots\n")
    r = server.postern("reload")
    assert r.returncode != 0
    assert re.search(r"^%s:\d+: .*message_size_limit" %
                     re.escape(str(server.conf)), r.out + r.err, re.M), \
        r.out + r.err
    assert server.proc.poll() is None
    assert server.wait_ready() == "220 %s ESMTP Postern" % HOSTNAME


def test_stop_finishes_transaction_in_progress(server):
    busy = server.raw()
    busy.expect(220)
    busy.expect(250, "EHLO client.example.test\r\n")
    busy.expect(250, "MAIL FROM:<alice@example.test>\r\n")
    busy.expect(250, "RCPT TO:<demo@example.test>\r\n")
    busy.expect(354, "DATA\r\n")
    busy.send("Subject: in-flight\r\n\r\nfirst half\r\n")
    idle = server.raw()
    idle.expect(220)
    idle.expect(250, "EHLO client.example.test\r\n")

    stop = subprocess.Popen([str(ENV.postern), "-c", str(server.conf),
                             "stop"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server.env(),
                            **server._user_kw(None))
    try:
        # the idle session is told first: smtpd is shutting down now
        code, lines = idle.reply()
        assert code == 421, lines
        assert lines[0] == "4.3.2 %s Service shutting down" % HOSTNAME
        assert idle.at_eof()
        # the transaction in DATA still completes
        busy.send("second half\r\n.\r\n")
        code, lines = busy.reply()
        assert code == 250 and "queued as" in lines[0], lines
        code, lines = busy.reply()
        assert code == 421, lines
        out, err = stop.communicate(timeout=45)
    finally:
        if stop.poll() is None:
            stop.kill()
    assert stop.returncode == 0, err
    assert b"postern: stopped" in out + err
    assert server.proc.wait(timeout=10) == 0
    # the accepted message is delivered after the next start
    server.start()
    m = server.wait_token("demo", "in-flight")[0]
    assert b"first half\nsecond half\n" in m


def test_stop(server):
    pids = set(pids_with_arg(str(server.conf)))
    assert pids
    r = server.postern("stop")
    assert r.returncode == 0, r.err
    assert "postern: stopped" in r.out + r.err
    assert server.proc.wait(timeout=10) == 0
    assert wait_for(lambda: not any(proc_alive(p) for p in pids)), [
        p for p in pids if proc_alive(p)]
    assert not (server.data / "posternd.pid").exists()
    server.wait_log(r"terminating on signal 15")
    r = server.postern("stop")
    assert r.returncode != 0


def test_start_as_daemon(make_server):
    srv = make_server(start=False)
    r = srv.postern("start", timeout=40)
    assert r.returncode == 0, r.out + r.err
    m = re.search(r"postern: started \(pid (\d+)\)", r.out + r.err)
    assert m, r.out + r.err
    pid = int(m.group(1))
    assert proc_alive(pid)
    assert (srv.data / "posternd.pid").read_text().split()[0] == str(pid)
    # wait_ready needs a child process to watch: check the port directly
    assert wait_for(lambda: _greeting(srv.smtp_port)).startswith("220 ")
    r = srv.postern("stop")
    assert r.returncode == 0, r.err
    assert wait_for(lambda: not proc_alive(pid))


def _greeting(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            line = s.makefile("rb").readline().decode().strip()
            s.sendall(b"QUIT\r\n")
            return line
    except OSError:
        return ""


def test_already_running(server):
    r = server.run([ENV.posternd, "-c", server.conf, "--foreground"],
                   timeout=30)
    assert r.returncode != 0
    assert re.search(r"already running \(pid %d\)" % server.proc.pid,
                     r.out + r.err), r.out + r.err
    assert server.wait_ready()


def test_port_in_use(make_server):
    srv = make_server(start=False)
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", srv.smtp_port))
        blocker.listen(1)
        r = srv.run([ENV.posternd, "-c", srv.conf, "--foreground"],
                    timeout=30)
    assert r.returncode != 0
    lines = [l for l in (r.out + r.err).splitlines() if l.strip()]
    assert len(lines) == 1, lines
    assert re.search(r"cannot listen on 127\.0\.0\.1:%d: Address already in "
                     r"use$" % srv.smtp_port, lines[0]), lines
    assert pids_with_arg(str(srv.conf)) == []


def test_privileged_port_needs_root(make_server):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 24:
            pytest.skip("unprivileged users may bind low ports here")
    srv = make_server(start=False)
    srv.write_config("smtp_listen = 127.0.0.1:24\n")
    r = srv.run([ENV.posternd, "-c", srv.conf, "--foreground"], timeout=30)
    assert r.returncode != 0
    lines = [l for l in (r.out + r.err).splitlines() if l.strip()]
    assert len(lines) == 1, lines
    assert re.search(r"cannot listen on 127\.0\.0\.1:24: Permission denied",
                     lines[0]), lines
    assert "1024" in lines[0]


def test_reload_moves_listener(server):
    old_port = server.smtp_port
    new_port = free_port()
    server.write_config("smtp_listen = 127.0.0.1:%d\n" % new_port)
    r = server.postern("reload")
    assert r.returncode == 0, r.out + r.err
    assert wait_for(lambda: _greeting(new_port).startswith("220 ")), \
        server.log_tail()
    assert wait_for(lambda: _refused(old_port)), "old port still open"
    server.smtp_port = new_port
    server.send("alice@example.test", "demo@example.test",
                make_msg("new-port"))
    server.wait_token("demo", "new-port")


def _refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True
