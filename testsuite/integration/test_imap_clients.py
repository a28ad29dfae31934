"""
Real IMAP clients against a real posternd: mbsync (isync) keeping a
1,000-message account in step both ways, and neomutt reading and
deleting mail through IMAP as a user at a terminal would (driven through
a pseudo-terminal, since mutt needs one).
"""
import os
import pty
import re
import select
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import DEFAULT_USERS, PASSWORD
from test_imap import MBSYNC_CONF, deliver, login

USERS = DEFAULT_USERS + ("ms1", "mu1")
SERVER_OPTIONS = {"imap": True, "users": USERS}

def fill_maildir(server, user, n, start=0):
    """n messages as a delivery agent leaves them in new/."""
    new = server.maildir(user) / "new"
    for i in range(start, start + n):
        body = ("From: s%d@example.test\r\nTo: %s@example.test\r\n"
                "Subject: bulk %05d\r\nMessage-ID: <bulk%d@example.test>\r\n"
                "\r\nbody of message %d\r\n" % (i, user, i, i, i))
        server.write(new / ("1700000000.M%dP1.bulk" % i), body)


def local_files(folder):
    out = {}
    for sub in ("new", "cur"):
        for n in os.listdir(os.path.join(folder, sub)):
            data = open(os.path.join(folder, sub, n), "rb").read()
            m = re.search(rb"Subject: (bulk \d+|[\w -]+)", data)
            flags = n.split(":2,")[1] if ":2," in n else ""
            out[m.group(1).decode()] = flags
    return out


def server_view(server, user):
    """Subject -> set of flags of every message in the user's INBOX."""
    im = login(server, user)
    try:
        im.select("INBOX")
        typ, data = im.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS "
                             "(SUBJECT)])")
        assert typ == "OK"
        out = {}
        for d in data:
            if not isinstance(d, tuple):
                continue
            subj = d[1].decode().split(":", 1)[1].strip()
            flags = re.search(r"FLAGS \(([^)]*)\)", d[0].decode()).group(1)
            out[subj] = set(flags.split())
        return out
    finally:
        im.logout()


@pytest.mark.skipif(not shutil.which("mbsync"), reason="no mbsync")
def test_mbsync_1000_messages_two_way(mserver):
    """mbsync copies a 1,000-message account, then an incremental run
    carries changes made on both sides while the other was away."""
    user = "ms1"
    deliver(mserver, user, "first")
    fill_maildir(mserver, user, 999)
    work = tempfile.mkdtemp(prefix="mbsync-")
    try:
        local = os.path.join(work, "mail")
        os.makedirs(local)
        conf = os.path.join(work, "mbsyncrc")
        with open(conf, "w") as f:
            f.write(MBSYNC_CONF.format(port=mserver.imap_port, user=user,
                                       password=PASSWORD, local=local))

        def mbsync():
            r = subprocess.run(["mbsync", "-c", conf, "-a"],
                               capture_output=True, timeout=300,
                               env=dict(os.environ, HOME=work))
            assert r.returncode == 0, (r.stdout, r.stderr)

        mbsync()
        inbox = os.path.join(local, "INBOX")
        got = local_files(inbox)
        assert len(got) == 1000
        assert "first" in got and "bulk 00998" in got

        # Server side, while the laptop is offline: 10 expunged,
        # 5 flagged, 3 new deliveries.
        im = login(mserver, user)
        try:
            im.select("INBOX")
            typ, _ = im.store("2:11", "+FLAGS.SILENT", "(\\Deleted)")
            assert typ == "OK"
            im.expunge()
            typ, _ = im.store("101:105", "+FLAGS.SILENT", "(\\Flagged)")
            assert typ == "OK"
        finally:
            im.logout()
        for i in range(3):
            deliver(mserver, user, "late %d" % i)
        # Local side: 7 read, 2 deleted, 4 written.
        cur = os.path.join(inbox, "cur")
        names = sorted(os.listdir(cur)) + sorted(
            os.listdir(os.path.join(inbox, "new")))
        seen = [n for n in names if "bulk 0050" in
                open(os.path.join(inbox, "cur" if n in os.listdir(cur)
                                  else "new", n), "rb").read().decode()]
        assert len(seen) == 10
        for k, n in enumerate(seen[:9]):
            sub = "cur" if os.path.exists(os.path.join(cur, n)) else "new"
            base = n.split(":2,")[0]
            flag = "S" if k < 7 else "ST"
            os.rename(os.path.join(inbox, sub, n),
                      os.path.join(cur, base + ":2," + flag))
        for i in range(4):
            with open(os.path.join(inbox, "new",
                                   "1800000000.%d.laptop" % i), "wb") as f:
                f.write(b"Subject: offline %d\n\nwritten offline\n" % i)
        mbsync()

        view = server_view(mserver, user)
        local_view = local_files(inbox)
        # 1000 - 10 expunged on the server - 2 deleted locally + 3 + 4.
        assert len(view) == 995, len(view)
        assert set(view) == set(local_view)
        for i in range(3):
            assert "late %d" % i in local_view
        for i in range(4):
            assert "offline %d" % i in view
        read = [s for s in view if "\\Seen" in view[s]]
        assert sorted(read) == ["bulk %05d" % i for i in range(500, 507)]
        flagged = sorted(s for s in view if "\\Flagged" in view[s])
        assert len(flagged) == 5
        for s in flagged:
            assert "F" in local_view[s]
        # Expunged on the server: gone locally too.
        assert "bulk 00000" not in local_view
        assert "bulk 00009" not in local_view
        assert "bulk 00010" in local_view
        # A third run with no changes moves nothing.
        before = local_files(inbox)
        mbsync()
        assert local_files(inbox) == before
        assert len(server_view(mserver, user)) == 995
    finally:
        shutil.rmtree(work, ignore_errors=True)


MUTTRC = """\
set folder="imap://{user}@127.0.0.1:{port}/"
set imap_user="{user}"
set imap_pass="{password}"
set spoolfile="+INBOX"
set ssl_starttls=no
set ssl_force_tls=no
set imap_check_subscribed=no
set mail_check=60
set timeout=10
set delete=yes
set quit=yes
set move=no
set confirmappend=no
set pager_stop=yes
set wait_key=no
set header_cache=""
set message_cachedir=""
set sort=date-sent
set pager_index_lines=0
"""


def run_mutt(rc, keys, home, timeout=60):
    """Run neomutt on a pseudo-terminal, type keys, return the screen
    output it drew (escape sequences included) and its exit status."""
    pid, fd = pty.fork()
    if pid == 0:
        env = {"HOME": home, "TERM": "vt100", "LANG": "C.UTF-8",
               "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "COLUMNS": "100", "LINES": "30"}
        os.execvpe("neomutt", ["neomutt", "-n", "-F", rc,
                               "-e", 'push "%s"' % keys], env)
    out = b""
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            out += chunk
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
    while status is None and time.time() < deadline:
        # The terminal closes a moment before the process is reaped.
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
        else:
            time.sleep(0.1)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("neomutt did not finish: %r" % out[-2000:])
    os.close(fd)
    return out.decode("utf-8", "replace"), status


@pytest.mark.skipif(not shutil.which("neomutt"), reason="no neomutt")
def test_neomutt_reads_and_deletes(mserver):
    """neomutt opens the INBOX over IMAP, shows a message, deletes one
    and quits; the server then has exactly the other message, unseen
    flags as mutt left them."""
    user = "mu1"
    deliver(mserver, user, "mutt keep", body="please keep me\n")
    time.sleep(1.1)		# distinct Date: for a stable sort
    deliver(mserver, user, "mutt drop", body="drop this one\n")
    home = tempfile.mkdtemp(prefix="mutt-")
    try:
        rc = os.path.join(home, "muttrc")
        with open(rc, "w") as f:
            f.write(MUTTRC.format(user=user, password=PASSWORD,
                                  port=mserver.imap_port))
        # Index sorted by date: the "keep" message is first.  Open it,
        # go back, move to the second, delete it, sync, quit.
        screen, status = run_mutt(
            rc, "<display-message><exit><next-undeleted>"
                "<delete-message><sync-mailbox><quit>", home)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, \
            screen[-2000:]
        view = server_view(mserver, user)
        assert list(view) == ["mutt keep"]
        # Displayed, so mutt marked it read (it fetches with .PEEK and
        # stores \Seen itself).
        assert "\\Seen" in view["mutt keep"]
        # The log shows the IMAP login of this user.
        assert mserver.log_lines(r"imap-login\[\d+\]: Login: user=<%s>, "
                                r"method=PLAIN" % user)
    finally:
        shutil.rmtree(home, ignore_errors=True)
