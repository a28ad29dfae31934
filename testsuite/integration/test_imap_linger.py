"""
A mailbox no session has any more stays open in the mail process for a
while (imap.c), so that the next SELECT only syncs.  What clients see
must be what a new open would show: \\Recent given once (RFC 3501
§2.3.2), EXAMINE never taking it, a deleted or renamed folder never
coming back in place of the new one of the same name, and changes made
meanwhile (a delivery) seen at the next SELECT.
"""
import os
import re
import time

from conftest import DEFAULT_USERS
from test_imap import RawIMAP, deliver

USERS = DEFAULT_USERS + ("lg1", "lg2", "lg3")
SERVER_OPTIONS = {"imap": True, "users": USERS}


def counts(lines):
    exists = recent = None
    for l in lines:
        m = re.fullmatch(r"\* (\d+) (EXISTS|RECENT)", l)
        if m and m.group(2) == "EXISTS":
            exists = int(m.group(1))
        elif m:
            recent = int(m.group(1))
    return exists, recent


def session(mserver, user):
    c = RawIMAP(mserver.imap_port)
    c.login(user)
    return c


def logout(c):
    _, t = c.cmd("z", "LOGOUT")
    assert t == "z OK Logout completed.", t
    c.close()


def test_recent_once_across_reconnects(mserver):
    """\\Recent goes to the first session only, also when the client
    comes back while the mailbox is still open; a delivery made while
    no session had it is \\Recent to the next one."""
    user = "lg1"
    deliver(mserver, user, "one")
    deliver(mserver, user, "two")
    c = session(mserver, user)
    lines, t = c.cmd("a", "SELECT INBOX")
    assert counts(lines) == (2, 2), lines
    logout(c)
    c = session(mserver, user)
    lines, t = c.cmd("a", "SELECT INBOX")
    assert counts(lines) == (2, 0), lines
    logout(c)
    deliver(mserver, user, "three")
    c = session(mserver, user)
    lines, t = c.cmd("a", "SELECT INBOX")
    assert counts(lines) == (3, 1), lines
    lines, t = c.cmd("b", "UID SEARCH RECENT")
    assert lines == ["* SEARCH 3"], lines
    logout(c)


def test_examine_leaves_recent(mserver):
    """EXAMINE shows \\Recent without taking it, every time, until a
    SELECT takes it."""
    user = "lg2"
    deliver(mserver, user, "one")
    for _ in range(2):
        c = session(mserver, user)
        lines, t = c.cmd("a", "EXAMINE INBOX")
        assert counts(lines) == (1, 1), lines
        logout(c)
    c = session(mserver, user)
    lines, t = c.cmd("a", "SELECT INBOX")
    assert counts(lines) == (1, 1), lines
    lines, t = c.cmd("b", "EXAMINE INBOX")
    assert counts(lines) == (1, 0), lines
    logout(c)


def test_deleted_folder_is_not_reused(mserver):
    """A folder deleted and made again is a new mailbox: its messages,
    a new UIDVALIDITY, and it notices files put into it."""
    user = "lg3"
    c = session(mserver, user)
    _, t = c.cmd("a", "CREATE box")
    assert "OK" in t, t
    _, t = c.cmd("b", "APPEND box {5+}\r\nold\r\n")
    assert "OK" in t, t
    lines, t = c.cmd("c", "SELECT box")
    assert counts(lines)[0] == 1, lines
    uidv = [l for l in lines if "UIDVALIDITY" in l]
    _, t = c.cmd("d", "UNSELECT")
    assert t == "d OK Unselect completed.", t
    time.sleep(1.1)		# UIDVALIDITY comes from the clock
    _, t = c.cmd("e", "DELETE box")
    assert t == "e OK Delete completed.", t
    _, t = c.cmd("f", "CREATE box")
    assert "OK" in t, t
    lines, t = c.cmd("g", "SELECT box")
    assert counts(lines)[0] == 0, lines
    assert [l for l in lines if "UIDVALIDITY" in l] != uidv, lines
    # A delivery into the new folder (as a filter would make it).
    new = mserver.maildir(user) / ".box" / "new"
    mserver.write(new / "1700000000.M1P1.host", "Subject: x\n\nbody\n",
                  mode=0o600)
    deadline = time.time() + 10
    while True:
        lines, t = c.cmd("h", "NOOP")
        if "* 1 EXISTS" in lines or time.time() > deadline:
            break
        time.sleep(0.1)
    assert "* 1 EXISTS" in lines, lines
    logout(c)
    assert os.path.isdir(new)
