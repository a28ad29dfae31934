"""
A full disk (DESIGN §3): ENOSPC answers 4xx and never 250; mail already
accepted stays queued while the mailbox's file system is full and is
delivered once there is room again.  Needs root to mount small tmpfs
file systems (skipped where mounting is not allowed).
"""
import contextlib
import errno
import os
import subprocess

import pytest

from conftest import IS_ROOT, crlf, make_msg

pytestmark = pytest.mark.skipif(not IS_ROOT,
                                reason="needs root to mount a tmpfs")


@contextlib.contextmanager
def small_fs(srv, path, size):
    """Mount a tmpfs of the given size on path (owned by the server's
    user); unmounted at the end, after the server has stopped."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%s,mode=0755" % size, "tmpfs", str(path)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % r.stdout.decode())
    srv.chown(path)
    try:
        yield path
    finally:
        srv.stop()
        subprocess.run(["umount", "-l", str(path)])


def fill(path):
    """Write path until the file system is full; returns the path."""
    chunk = b"\0" * 65536
    with open(path, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        # the last buffered bytes may not fit either
        with contextlib.suppress(OSError):
            f.close()
    return path


def attempt(srv, subject):
    """One transaction; the reply codes of MAIL, RCPT and end of data
    (None when not reached)."""
    with srv.smtp() as s:
        s.ehlo()
        mail = s.mail("alice@example.test")[0]
        if mail != 250:
            return mail, None, None
        rcpt = s.rcpt("demo@example.test")[0]
        if rcpt != 250:
            return mail, rcpt, None
        code, text = s.data(crlf(make_msg(subject, "x\n" * 2000)))
        return mail, rcpt, code


def test_full_queue_file_system_answers_4xx(make_server):
    srv = make_server(start=False)
    with small_fs(srv, srv.spool, "4m"):
        srv.start()
        filler = fill(srv.spool / "filler")
        codes = attempt(srv, "no-room-in-queue")
        last = [c for c in codes if c is not None][-1]
        assert 400 <= last < 500, codes
        assert 250 not in codes[2:], codes
        os.unlink(filler)
        assert attempt(srv, "room-again") == (250, 250, 250)
        srv.wait_token("demo", "room-again")
        srv.wait_queue_empty()
        assert srv.with_token("demo", "no-room-in-queue") == []


def test_full_mailbox_defers_then_delivers(make_server):
    srv = make_server(start=False)
    md = srv.maildir("demo")
    srv.make_home("demo")
    with small_fs(srv, md, "1m"):
        for sub in ("tmp", "new", "cur"):
            srv.mkdir(md / sub, mode=0o700)
        os.chmod(md, 0o700)
        srv.start()
        filler = fill(md / "filler")
        qid = srv.send("alice@example.test", "demo@example.test",
                       make_msg("waits-for-room", "y\n" * 2000))
        srv.wait_log(r"%s: to=<demo@example\.test>.*dsn=4\.\d\.\d.*"
                     r"status=deferred.*No space left on device" % qid)
        srv.wait_deferred(qid)
        assert srv.messages("demo") == []
        os.unlink(filler)
        assert srv.postern("queue", "flush").returncode == 0
        srv.wait_token("demo", "waits-for-room")
        srv.wait_queue_empty()
        assert len(srv.messages("demo")) == 1
