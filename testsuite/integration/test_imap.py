"""
IMAP (RFC 9051, RFC 3501 and the extensions of the capability list):
imap-login and the imap mail process, talked to with real clients:
Python's imaplib, raw sockets (IDLE, STARTTLS injection, back-pressure,
bad input), curl and mbsync.  Checks what a user sees: responses,
message bytes, flags, what is on disk in the Maildir, how fast IDLE
hears of a delivery.  The exact dialogues of the RFCs are in the
scripted suite (testsuite/imap, test_imap_script.py).
"""
import imaplib
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import (DEFAULT_USERS, PASSWORD, WAIT, make_msg,
                      pids_with_arg, proc_uids, requires_root, wait_for)

# Every test that changes a mailbox uses a user of its own.
USERS = DEFAULT_USERS + tuple("i%02d" % i for i in range(1, 30))
SERVER_OPTIONS = {"imap": True, "users": USERS}


def client_ctx():
    """The certificate is self-signed: no verification."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def deliver(server, user, subject, body="hello\n"):
    server.send("sender@example.test", "%s@example.test" % user,
                make_msg(subject, body=body, sender="sender@example.test",
                         to="%s@example.test" % user))
    server.wait_token(user, subject)


def login(server, user):
    im = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=WAIT)
    typ, data = im.login(user, PASSWORD)
    assert typ == "OK", data
    return im


class RawIMAP:
    """A byte-exact IMAP client on a plain socket."""

    def __init__(self, port, timeout=WAIT):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        assert raw.endswith(b"\r"), "line without CRLF: %r" % raw
        return raw[:-1].decode("utf-8", "replace")

    def cmd(self, tag, text):
        """Send one command; return (untagged lines, tagged line)."""
        self.send("%s %s\r\n" % (tag, text))
        return self.until(tag)

    def until(self, tag):
        lines = []
        while True:
            l = self.line()
            if l.startswith(tag + " "):
                return lines, l
            lines.append(l)

    def login(self, user):
        assert self.line().startswith("* OK ")
        _, t = self.cmd("L", 'LOGIN "%s" "%s"' % (user, PASSWORD))
        assert t.startswith("L OK "), t

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


def imap_pids(server):
    """The imap mail processes of this server."""
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


# ------------------------------------------------------------ imaplib

def test_imaplib_end_to_end(mserver):
    """The usual life of a mail client, with imaplib: what it sees and
    what ends up in the Maildir (flags in the ":2," suffix, folders as
    Maildir++ directories)."""
    user = "i01"
    deliver(mserver, user, "e2e-one", body="first body\n")
    deliver(mserver, user, "e2e-two", body="second body\n")
    im = login(mserver, user)
    try:
        typ, boxes = im.list()
        names = [b.decode().rsplit(' "/" ', 1)[1] for b in boxes]
        assert names == ['"INBOX"', '"Archive"', '"Drafts"', '"Junk"',
                         '"Sent"', '"Trash"']
        assert b"\\Sent" in boxes[4] and b"\\Trash" in boxes[5]
        typ, data = im.select("INBOX")
        assert (typ, data) == ("OK", [b"2"])
        assert im.untagged_responses.get("RECENT") == [b"2"]
        typ, data = im.fetch("1:2", "(UID FLAGS RFC822.SIZE "
                             "BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        assert b"Subject: e2e-one" in data[0][1]
        assert b"\\Recent" in data[0][0] and b"\\Seen" not in data[0][0]
        # BODY[] sets \Seen; the file is renamed with "S".
        typ, data = im.fetch("1", "(BODY[])")
        raw = data[0][1]
        assert raw.endswith(b"first body\r\n")
        assert b"\r\nSubject: e2e-one\r\n" in raw
        size = int(re.search(rb"\{(\d+)\}", data[0][0]).group(1))
        assert size == len(raw)
        files = mserver.maildir_files(user)
        assert any(p.name.endswith(":2,S") for p in files), files
        typ, data = im.store("2", "+FLAGS", "(\\Flagged $Forwarded)")
        assert typ == "OK" and b"$Forwarded" in data[0]
        kw = (mserver.maildir(user) / "dovecot-keywords").read_text()
        assert "$Forwarded" in kw
        typ, data = im.search(None, "FLAGGED")
        assert data == [b"2"]
        typ, data = im.uid("SEARCH", None, "SUBJECT", "e2e-two")
        assert data == [b"2"]
        typ, data = im.search("UTF-8", "BODY", "second")
        assert data == [b"2"]
        # APPEND with flags and a date; APPENDUID.
        msg = make_msg("e2e-appended", body="appended\n").replace(
            "\n", "\r\n").encode()
        typ, data = im.append("INBOX", "(\\Seen)",
                              imaplib.Time2Internaldate(1600000000), msg)
        assert typ == "OK"
        m = re.match(rb"\[APPENDUID (\d+) 3\]", data[0])
        assert m, data
        typ, data = im.fetch("3", "(INTERNALDATE FLAGS)")
        assert b"\\Seen" in data[0]
        assert imaplib.Internaldate2tuple(data[0]) == \
            time.localtime(1600000000)
        # COPY, MOVE, EXPUNGE.
        typ, data = im.copy("1", "Archive")
        assert typ == "OK" and b"COPYUID" in data[0]
        typ, data = im.uid("MOVE", "3", "Trash")
        assert typ == "OK"
        # RFC 6851 §3.3: the moved message is expunged here.
        assert im.response("EXPUNGE") == ("EXPUNGE", [b"3"])
        typ, data = im.search(None, "ALL")
        assert data == [b"1 2"]
        im.store("1", "+FLAGS", "(\\Deleted)")
        typ, data = im.expunge()
        assert data == [b"1"]
        typ, data = im.status("Archive", "(MESSAGES)")
        assert data == [b'"Archive" (MESSAGES 1)']
        typ, data = im.status("Trash", "(MESSAGES UNSEEN)")
        assert data == [b'"Trash" (MESSAGES 1 UNSEEN 0)']
        assert len(list((mserver.maildir(user) / ".Archive" /
                         "cur").iterdir())) == 1
        # Folders.
        assert im.create("Projects/2024")[0] == "OK"
        assert im.rename("Projects", "Work")[0] == "OK"
        typ, boxes = im.list('""', "Work*")
        # Maildir++: "Work" exists only as the parent of ".Work.2024".
        assert [b.decode() for b in boxes] == [
            '(\\Noselect \\HasChildren) "/" "Work"',
            '(\\HasNoChildren) "/" "Work/2024"']
        assert (mserver.maildir(user) / ".Work.2024" / "cur").is_dir()
        assert im.delete("Work/2024")[0] == "OK"
        assert im.create("Work")[0] == "OK"
        assert im.subscribe("Work")[0] == "OK"
        typ, data = im.lsub('""', "Work")
        assert data == [b'() "/" "Work"']
        typ, data = im.close()
        assert typ == "OK"
    finally:
        im.logout()
    # What is left after the session: one message in INBOX, flagged.
    files = mserver.maildir_files(user)
    assert len(files) == 1 and ":2,F" in files[0].name


def test_special_use_folders_once(mserver):
    """The special-use folders come at the first login only: a folder
    the user deleted stays deleted."""
    user = "i02"
    im = login(mserver, user)
    try:
        assert im.delete("Junk")[0] == "OK"
    finally:
        im.logout()
    im = login(mserver, user)
    try:
        typ, boxes = im.list()
        assert not [b for b in boxes if b.endswith(b'"Junk"')]
        assert [b for b in boxes if b.endswith(b'"Sent"')]
    finally:
        im.logout()
    subs = (mserver.maildir(user) / "subscriptions").read_text()
    assert subs.split("\n")[:2] == ["V\t2", ""]
    assert "Sent" in subs.split("\n")


def test_utf7_folder_names_on_disk(mserver):
    """Names are modified UTF-7 on the wire and on disk (Maildir++ as
    Dovecot writes it)."""
    user = "i03"
    im = login(mserver, user)
    try:
        assert im.create('"&ZeVnLIqe-"')[0] == "OK"
        typ, boxes = im.list('""', "&ZeVnLIqe-")
        assert boxes == [b'(\\HasNoChildren) "/" "&ZeVnLIqe-"']
    finally:
        im.logout()
    assert (mserver.maildir(user) / ".&ZeVnLIqe-").is_dir()


# -------------------------------------------------------------- IDLE

def test_idle_sees_smtp_delivery_within_a_second(mserver):
    """A message delivered over SMTP reaches an idling session within a
    second (inotify on the Maildir, DESIGN §12)."""
    user = "i04"
    raw = RawIMAP(mserver.imap_port)
    try:
        raw.login(user)
        lines, t = raw.cmd("s", "SELECT INBOX")
        assert "* 0 EXISTS" in lines
        raw.send("i IDLE\r\n")
        assert raw.line() == "+ idling"
        start = time.monotonic()
        mserver.send("sender@example.test", "%s@example.test" % user,
                     make_msg("idle-delivery"))
        sent = time.monotonic()
        assert raw.line() == "* 1 EXISTS"
        arrived = time.monotonic()
        assert raw.line() == "* 1 RECENT"
        assert arrived - sent < 1.0, (sent - start, arrived - sent)
        raw.send("DONE\r\n")
        assert raw.line() == "i OK Idle completed."
        lines, t = raw.cmd("f", "FETCH 1 (BODY.PEEK[HEADER.FIELDS "
                           "(SUBJECT)])")
        assert t == "f OK Fetch completed."
        assert "Subject: idle-delivery" in lines
    finally:
        raw.close()


def test_idle_sees_other_programs(mserver):
    """A file dropped into new/ by another program, and a file removed
    by one, reach an idling session (EXISTS, EXPUNGE)."""
    user = "i05"
    deliver(mserver, user, "outside-1")
    raw = RawIMAP(mserver.imap_port)
    try:
        raw.login(user)
        lines, _ = raw.cmd("s", "SELECT INBOX")
        assert "* 1 EXISTS" in lines
        raw.send("i IDLE\r\n")
        assert raw.line() == "+ idling"
        md = mserver.maildir(user)
        # As an MDA does it: tmp/, then a rename into new/.
        tmp = mserver.write(md / "tmp" / "1700000000.outside.host",
                            b"Subject: dropped\n\nhi\n", mode=0o600)
        os.rename(tmp, md / "new" / tmp.name)
        t0 = time.monotonic()
        assert raw.line() == "* 2 EXISTS"
        assert time.monotonic() - t0 < 1.0
        assert raw.line() == "* 2 RECENT"
        first = [p for p in mserver.maildir_files(user)
                 if b"outside-1" in p.read_bytes()][0]
        first.unlink()
        assert raw.line() == "* 1 EXPUNGE"
        raw.send("DONE\r\n")
        assert raw.line() == "i OK Idle completed."
    finally:
        raw.close()


def test_idle_between_sessions(mserver):
    """Flags set in one session reach another idling one at once."""
    user = "i06"
    deliver(mserver, user, "shared")
    a = RawIMAP(mserver.imap_port)
    b = RawIMAP(mserver.imap_port)
    try:
        a.login(user)
        b.login(user)
        a.cmd("s", "SELECT INBOX")
        b.cmd("s", "SELECT INBOX")
        b.send("i IDLE\r\n")
        assert b.line() == "+ idling"
        _, t = a.cmd("t", "STORE 1 +FLAGS.SILENT (\\Answered)")
        assert t == "t OK Store completed."
        assert b.line() == "* 1 FETCH (UID 1 FLAGS (\\Answered))"
        b.send("DONE\r\n")
        assert b.line() == "i OK Idle completed."
    finally:
        a.close()
        b.close()


def test_expunge_while_fetching(mserver):
    """Another session expunges a message while a big FETCH of it is
    still going out: the answer stays well-formed (the promised bytes
    are sent), later items of the message are empty, the tagged OK
    says EXPUNGEISSUED, and the EXPUNGE comes after, not during it."""
    user = "i13"
    body = "z" * 99 + "\n"
    deliver(mserver, user, "vanishing", body=body * 80000)
    a = RawIMAP(mserver.imap_port)
    b = RawIMAP(mserver.imap_port)
    try:
        a.login(user)
        b.login(user)
        a.cmd("s", "SELECT INBOX")
        b.cmd("s", "SELECT INBOX")
        # 8 MB: more than the socket buffers hold while a reads nothing.
        a.send("f FETCH 1 (BODY.PEEK[] BODY.PEEK[TEXT] FLAGS)\r\n")
        head = a.line()
        m = re.fullmatch(r"\* 1 FETCH \(FLAGS \(\\Recent\) "
                         r"BODY\[\] \{(\d+)\}", head)
        assert m, head
        size = int(m.group(1))
        _, t = b.cmd("d", "STORE 1 +FLAGS.SILENT (\\Deleted)")
        assert t == "d OK Store completed."
        _, t = b.cmd("e", "EXPUNGE")
        assert t == "e OK Expunge completed."
        while len(a.buf) < size:
            chunk = a.sock.recv(65536)
            assert chunk
            a.buf += chunk
        literal, a.buf = a.buf[:size], a.buf[size:]
        assert literal.endswith(body.replace("\n", "\r\n").encode())
        # The rest of the message is gone: an empty TEXT, and NO.
        assert a.line() == " BODY[TEXT] {0}"
        assert a.line() == ")"
        assert a.line() == ("f OK [EXPUNGEISSUED] Some of the requested "
                            "messages no longer exist.")
        _, t = a.cmd("n", "NOOP")
        assert _ == ["* 1 EXPUNGE"] and t == "n OK NOOP completed."
    finally:
        a.close()
        b.close()


# ------------------------------------------------------ TLS and login

def test_imaps_and_big_message(mserver):
    """Implicit TLS (RFC 8314) through imap-login's relay, with a
    message of several megabytes, fetched whole and in parts."""
    user = "i07"
    body = "".join("line %06d %s\n" % (i, "x" * 60) for i in range(60000))
    deliver(mserver, user, "big-one", body=body)
    im = imaplib.IMAP4_SSL("127.0.0.1", mserver.imaps_port,
                           ssl_context=client_ctx(), timeout=WAIT)
    try:
        assert b"STARTTLS" not in im.welcome
        im.login(user, PASSWORD)
        im.select("INBOX", readonly=True)
        typ, data = im.fetch("1", "(RFC822.SIZE BODY.PEEK[TEXT] "
                             "BODY.PEEK[TEXT]<700000.100>)")
        size = int(re.search(rb"RFC822\.SIZE (\d+)", data[0][0]).group(1))
        text = data[0][1]
        assert size > 4000000
        assert text == body.replace("\n", "\r\n").encode()
        assert data[1][1] == text[700000:700100]
        # EXAMINE leaves \Seen alone.
        typ, data = im.fetch("1", "FLAGS")
        assert b"\\Seen" not in data[0]
    finally:
        im.logout()


def test_starttls_injection(mserver):
    """Bytes pipelined after STARTTLS are dropped (RFC 9051 §6.2.1): no
    answer to them inside TLS; capabilities change after TLS."""
    raw = RawIMAP(mserver.imap_port)
    try:
        greeting = raw.line()
        assert "STARTTLS" in greeting
        raw.send(b"a STARTTLS\r\nb NOOP\r\n")
        assert raw.line() == "a OK Begin TLS negotiation now."
        assert raw.buf == b""
        raw.sock = client_ctx().wrap_socket(raw.sock)
        raw.sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            data = raw.sock.recv(4096)
            pytest.fail("answer inside TLS to an injected command: %r" %
                        data)
        raw.sock.settimeout(WAIT)
        lines, t = raw.cmd("c", "CAPABILITY")
        assert "STARTTLS" not in lines[0] and "AUTH=PLAIN" in lines[0]
        _, t = raw.cmd("d", "STARTTLS")
        assert t == "d BAD TLS is already active."
        _, t = raw.cmd("e", 'LOGIN "i08" "%s"' % PASSWORD)
        assert t.startswith("e OK [CAPABILITY ")
        lines, t = raw.cmd("f", "SELECT INBOX")
        assert t == "f OK [READ-WRITE] Select completed."
    finally:
        raw.close()


def test_logindisabled_before_tls(make_server):
    """Without TLS on a connection that is not trusted, LOGIN is
    refused (LOGINDISABLED, [PRIVACYREQUIRED]) and no plaintext SASL
    mechanism is offered; after STARTTLS everything works."""
    s = make_server(imap=True, conf="plaintext_auth_loopback = no\n")
    im = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=WAIT)
    try:
        caps = im.capabilities
        assert "LOGINDISABLED" in caps and "STARTTLS" in caps
        assert "AUTH=PLAIN" not in caps
        with pytest.raises(imaplib.IMAP4.error,
                           match=r"PRIVACYREQUIRED"):
            im.login("bob", PASSWORD)
        im.starttls(ssl_context=client_ctx())
        assert "LOGINDISABLED" not in im.capabilities
        assert "AUTH=PLAIN" in im.capabilities
        typ, data = im.login("bob", PASSWORD)
        assert typ == "OK"
        assert im.select("INBOX")[0] == "OK"
    finally:
        im.logout()


def test_authenticate_and_failures(make_server):
    """AUTHENTICATE PLAIN through imaplib; a wrong password is NO
    [AUTHENTICATIONFAILED] and logged for fail2ban."""
    s = make_server(imap=True)
    im = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=WAIT)
    try:
        with pytest.raises(imaplib.IMAP4.error,
                           match=r"AUTHENTICATIONFAILED"):
            im.login("carol", "wrong")
        typ, _ = im.authenticate(
            "PLAIN", lambda _: b"\0carol\0" + PASSWORD.encode())
        assert typ == "OK"
        assert "MOVE" in im.capabilities or im.capability()[0] == "OK"
    finally:
        im.logout()
    s.wait_log(r"imap-login\[\d+\]: Login: user=<carol>, method=PLAIN, "
               r"rip=127\.0\.0\.1, lip=127\.0\.0\.1, mpid=\d+")
    s.wait_log(r"auth failed: user=<carol>, method=PLAIN, .*service=imap")
    s.wait_log(r"imap\(carol\)<\d+><\d+>: Disconnected: Logged out "
               r"in=\d+ out=\d+")


# ----------------------------------------------- bounds, bad input

def test_back_pressure(mserver):
    """A client that asks for a big message many times and reads
    nothing makes the server stop reading it (DESIGN §12): the mail
    process does not buffer the answers, and other sessions of the
    same user go on being served."""
    user = "i09"
    body = "y" * 99 + "\n"
    deliver(mserver, user, "pressure", body=body * 20000)
    slow = RawIMAP(mserver.imap_port)
    try:
        slow.login(user)
        slow.cmd("s", "EXAMINE INBOX")
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        pids = wait_for(lambda: imap_pids(mserver))
        before = max(rss_kb(p) for p in pids)
        # 200 x 2 MB asked for; none of it read.
        try:
            slow.sock.settimeout(2)
            for i in range(200):
                slow.send("f%d FETCH 1 BODY.PEEK[]\r\n" % i)
        except socket.timeout:
            pass        # the server stopped reading us: fine
        time.sleep(1.0)
        after = max(rss_kb(p) for p in imap_pids(mserver))
        assert after - before < 20000, (before, after)
        other = login(mserver, user)
        try:
            typ, data = other.select("INBOX")
            assert typ == "OK" and data == [b"1"]
        finally:
            other.logout()
    finally:
        slow.close()


def test_bad_input(mserver):
    """Overlong lines are BAD and the session goes on; a buffer-full of
    bytes without a line end is refused without growing memory; a client
    that only makes errors is disconnected."""
    user = "i10"
    raw = RawIMAP(mserver.imap_port)
    try:
        raw.login(user)
        raw.send(b"a " + b"x" * 200000 + b"\r\n")
        assert raw.line() == "a BAD Too long command line"
        _, t = raw.cmd("b", "NOOP")
        assert t == "b OK NOOP completed."
        # A literal too big for a command (not APPEND).
        raw.send(b"c SELECT {1000000}\r\n")
        assert raw.line() == "c BAD [TOOBIG] Literal too big"
        # c was the first error in a row; the twentieth ends it all.
        for i in range(18):
            raw.send("e%d BOGUS\r\n" % i)
            assert raw.line() == "e%d BAD Unknown command" % i
        raw.send(b"z BOGUS\r\n")
        assert raw.line() == "z BAD Unknown command"
        assert raw.line() == "* BYE Too many invalid IMAP commands."
        assert raw.at_eof()
    finally:
        raw.close()
    # Before login: the same, with imap-login's bounds.
    raw = RawIMAP(mserver.imap_port)
    try:
        assert raw.line().startswith("* OK")
        raw.send(b"x" * 100000)
        assert raw.line().endswith("BAD Too long command line")
        raw.send(b"\r\na NOOP\r\n")
        assert raw.line() == "a OK NOOP completed."
    finally:
        raw.close()


# ------------------------------------------------------ other clients

@pytest.mark.skipif(not shutil.which("curl"), reason="no curl")
def test_curl(mserver):
    """curl imap:// lists folders, fetches a message by UID, and
    uploads one (APPEND)."""
    user = "i11"
    deliver(mserver, user, "curl-1", body="curl body\n")
    base = "imap://127.0.0.1:%d/" % mserver.imap_port
    cred = "%s:%s" % (user, PASSWORD)

    def curl(*args):
        r = subprocess.run(["curl", "-sS", "--max-time", "60", "--user",
                            cred] + list(args), capture_output=True,
                           timeout=90)
        assert r.returncode == 0, r.stderr
        return r.stdout

    listing = curl(base).decode()
    assert '* LIST (\\HasNoChildren) "/" "INBOX"' in listing
    assert '"Sent"' in listing
    msg = curl(base + "INBOX;UID=1")
    assert b"Subject: curl-1\r\n" in msg and msg.endswith(b"curl body\r\n")
    with tempfile.NamedTemporaryFile("wb", suffix=".eml") as f:
        f.write(b"Subject: uploaded by curl\r\n\r\nup\r\n")
        f.flush()
        curl("-T", f.name, base + "Drafts")
    out = curl(base + "Drafts;UID=1")
    assert out == b"Subject: uploaded by curl\r\n\r\nup\r\n"


MBSYNC_CONF = """\
IMAPAccount test
Host 127.0.0.1
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
"""


@pytest.mark.skipif(not shutil.which("mbsync"), reason="no mbsync")
def test_mbsync_two_way(mserver):
    """mbsync keeps a local Maildir and the account in step both ways:
    messages, flags, folders and deletions (UIDPLUS, UIDs, APPEND)."""
    user = "i12"
    deliver(mserver, user, "mbsync-1")
    deliver(mserver, user, "mbsync-2")
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
                               capture_output=True, timeout=120,
                               env=dict(os.environ, HOME=work))
            assert r.returncode == 0, (r.stdout, r.stderr)

        mbsync()
        inbox = os.path.join(local, "INBOX")
        got = [open(os.path.join(inbox, "new", n), "rb").read()
               for n in os.listdir(os.path.join(inbox, "new"))] + \
              [open(os.path.join(inbox, "cur", n), "rb").read()
               for n in os.listdir(os.path.join(inbox, "cur"))]
        assert sorted(b"mbsync-1" in m for m in got) == [False, True]
        assert os.path.isdir(os.path.join(local, "Sent"))
        # Local changes: a new message in Sent, one marked seen and one
        # deleted in INBOX.
        with open(os.path.join(local, "Sent", "new",
                               "1700000000.1.local"), "wb") as f:
            f.write(b"Subject: written offline\n\nsent text\n")
        # Maildir flags as a local MUA sets them: into cur/ with ":2,".
        moved = 0
        files = [(sub, n) for sub in ("new", "cur")
                 for n in os.listdir(os.path.join(inbox, sub))]
        for sub, n in files:
            src = os.path.join(inbox, sub, n)
            base = n.split(":2,")[0]
            data = open(src, "rb").read()
            flag = "S" if b"mbsync-1" in data else "T"
            os.rename(src, os.path.join(inbox, "cur", base + ":2," + flag))
            moved += 1
        assert moved == 2
        mbsync()
        im = login(mserver, user)
        try:
            typ, data = im.status("Sent", "(MESSAGES)")
            assert data == [b'"Sent" (MESSAGES 1)']
            im.select("Sent")
            typ, data = im.fetch("1", "(BODY.PEEK[])")
            # mbsync adds its X-TUID: header.
            assert data[0][1].startswith(b"Subject: written offline\r\n")
            assert data[0][1].endswith(b"\r\n\r\nsent text\r\n")
            im.select("INBOX")
            typ, data = im.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS "
                                 "(SUBJECT)])")
            flags = {(b"mbsync-1" in d[1]): d[0] for d in data
                     if isinstance(d, tuple)}
            assert b"\\Seen" in flags[True]
            assert False not in flags or b"\\Deleted" in flags[False]
            # A change on the server side comes back down.
            im.store("1:*", "+FLAGS", "(\\Flagged)")
            im.expunge()
        finally:
            im.logout()
        mbsync()
        cur = os.listdir(os.path.join(inbox, "cur"))
        assert len(cur) == 1 and cur[0].endswith(":2,FS"), cur
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------- mbox

def test_mbox_store(make_server):
    """The same commands on an mbox store (mail_location = mbox:):
    folders are files, flags live in Status:/X-Status: and the UID
    map, APPEND writes under the mbox locks."""
    s = make_server(imap=True, mail="mbox")
    deliver(s, "alice", "mbox-one", body="one\n")
    im = login(s, "alice")
    try:
        typ, boxes = im.list()
        assert typ == "OK" and b'"Sent"' in b"".join(boxes)
        typ, data = im.select("INBOX")
        assert data == [b"1"]
        typ, data = im.fetch("1", "(BODY[])")
        assert data[0][1].endswith(b"one\r\n")
        typ, data = im.fetch("1", "FLAGS")
        assert b"\\Seen" in data[0]
        msg = b"Subject: appended\r\n\r\nFrom the past\r\n>From x\r\n"
        typ, data = im.append("INBOX", "(\\Flagged)", None, msg)
        assert typ == "OK" and b"APPENDUID" in data[0], data
        typ, data = im.fetch("2", "(FLAGS BODY.PEEK[])")
        assert b"\\Flagged" in data[0][0]
        assert data[0][1] == msg
        typ, data = im.copy("1:2", "Trash")
        assert typ == "OK"
        im.store("1", "+FLAGS", "(\\Deleted)")
        typ, data = im.expunge()
        assert data == [b"1"]
        typ, data = im.status("Trash", "(MESSAGES)")
        assert data == [b'"Trash" (MESSAGES 2)']
        assert im.create("Lists/imap")[0] == "OK"
        assert im.rename("Lists/imap", "Lists/imap-old")[0] == "OK"
    finally:
        im.logout()
    spool = s.mbox_messages("alice")
    assert len(spool) == 1 and spool[0]["Subject"] == "appended"
    assert (s.home("alice") / "mail" / "Lists" / "imap-old").is_file()


# ---------------------------------------------------------- root mode

@requires_root
def test_root_mode_mail_process_is_the_user(make_server, root_users):
    """Root mode: each system user's sessions are served by a mail
    process with that user's uid and gid only (DESIGN §2), and what it
    saves belongs to the user."""
    subprocess.run(["chpasswd"], input="".join(
        "%s:%s\n" % (u, PASSWORD) for u in root_users).encode(),
        check=True)
    alice, bob = root_users
    s = make_server(root_mode=True, system_users=root_users, imap=True)
    ims = []
    try:
        for user in (alice, bob):
            im = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=WAIT)
            im.login(user, PASSWORD)
            typ, data = im.append("INBOX", None, None,
                                  b"Subject: root mode\r\n\r\nx\r\n")
            assert typ == "OK", data
            ims.append(im)
        pids = {}
        for user in (alice, bob):
            line = s.wait_log(r"imap-login\[\d+\]: Login: user=<%s>, "
                              r".*mpid=(\d+)" % re.escape(user))[-1]
            pids[user] = int(re.search(r"mpid=(\d+)", line).group(1))
        assert pids[alice] != pids[bob]
        for user, pid in pids.items():
            pw = pwd.getpwnam(user)
            assert proc_uids(pid) == (pw.pw_uid,) * 4, user
            files = s.maildir_files(user)
            assert len(files) == 1
            st = os.stat(files[0])
            assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
    finally:
        # The system users are shared with other tests: leave their
        # mailboxes as they were.
        for im in ims:
            im.select("INBOX")
            im.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
            im.expunge()
            for name in ("Drafts", "Sent", "Trash", "Junk", "Archive"):
                im.delete(name)
            im.logout()
        for user in (alice, bob):
            subs = s.maildir(user) / "subscriptions"
            if subs.exists():
                subs.unlink()
