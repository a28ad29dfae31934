"""
MAILBOXID (RFC 8474 §4) where the scripted suite cannot go: an id that
differs after DELETE and CREATE of the same name, ids that survive a
restart of the server, ids taken from a Dovecot uidlist or given to a
UID map written before ids existed, and the same on an mbox store.
"""
import os
import re

from conftest import DEFAULT_USERS
from test_imap import RawIMAP, deliver

USERS = DEFAULT_USERS + ("mi1", "mi2", "mi3")
SERVER_OPTIONS = {"imap": True, "users": USERS}

ID = r"([0-9a-f]{32})"


def created(c, tag, name):
    _, t = c.cmd(tag, "CREATE " + name)
    m = re.fullmatch(r"%s OK \[MAILBOXID \(%s\)\] Create completed\."
                     % (tag, ID), t)
    assert m, t
    return m.group(1)


def status_id(c, tag, name):
    lines, t = c.cmd(tag, "STATUS %s (MAILBOXID)" % name)
    assert t == tag + " OK Status completed.", (lines, t)
    m = re.fullmatch(r'\* STATUS "?%s"? \(MAILBOXID \(%s\)\)'
                     % (re.escape(name), ID), lines[0])
    assert m, lines
    return m.group(1)


def select_id(c, tag, name):
    lines, t = c.cmd(tag, "SELECT " + name)
    assert "OK" in t, t
    ids = [re.fullmatch(r"\* OK \[MAILBOXID \(%s\)\] Ok" % ID, l)
           for l in lines]
    ids = [m.group(1) for m in ids if m]
    assert len(ids) == 1, lines
    return ids[0]


def test_delete_and_create_give_a_new_id(mserver):
    """A mailbox made again under an old name is a new mailbox: a new
    id, while the ids of other mailboxes stay."""
    c = RawIMAP(mserver.imap_port)
    c.login("mi1")
    inbox = select_id(c, "a", "INBOX")
    first = created(c, "b", "again")
    assert first != inbox
    assert status_id(c, "c", "again") == first
    _, t = c.cmd("d", "DELETE again")
    assert t == "d OK Delete completed."
    second = created(c, "e", "again")
    assert second not in (first, inbox)
    assert status_id(c, "f", "again") == second
    assert select_id(c, "g", "again") == second
    assert select_id(c, "h", "INBOX") == inbox
    c.close()


def test_ids_survive_restart_and_rename(mserver):
    """After a RENAME and a restart of posternd, every mailbox has the
    id it had when it was made."""
    user = "mi2"
    deliver(mserver, user, "restart-1")
    c = RawIMAP(mserver.imap_port)
    c.login(user)
    inbox = select_id(c, "a", "INBOX")
    box = created(c, "b", "before")
    _, t = c.cmd("c", "RENAME before after")
    assert t == "c OK Rename completed."
    c.close()
    mserver.stop()
    mserver.start()
    c = RawIMAP(mserver.imap_port)
    c.login(user)
    assert status_id(c, "a", "after") == box
    assert select_id(c, "b", "INBOX") == inbox
    assert select_id(c, "c", "after") == box
    c.close()


def test_dovecot_guid_and_old_map(mserver):
    """A folder first opened with a Dovecot uidlist keeps Dovecot's
    mailbox GUID as its id (clients that cached it see no new mailbox);
    a folder whose UID map predates ids gets one that then stays, and
    keeps its UIDVALIDITY and UIDs."""
    user = "mi3"
    deliver(mserver, user, "first")
    md = mserver.maildir(user)
    guid = "0123456789ABCDEF0123456789abcdef"
    msgname = "1700000000.M1P1.host:2,S"
    # Folders made behind the server's back, as a migration leaves them.
    for name in ("dove", "old"):
        for sub in ("tmp", "new", "cur"):
            mserver.mkdir(md / ("." + name) / sub, mode=0o700)
        mserver.write(md / ("." + name) / "cur" / msgname,
                      "Subject: m\n\nbody\n", mode=0o600)
    mserver.write(md / ".dove" / "dovecot-uidlist",
                  "3 V1234 N9 G%s\n7 :%s\n" % (guid, msgname.split(":")[0]),
                  mode=0o600)
    mserver.write(md / ".old" / "postern-uidlist",
                  "postern-uidlist 1 V4321 N6\n5 :%s\n"
                  % msgname.split(":")[0], mode=0o600)
    c = RawIMAP(mserver.imap_port)
    c.login(user)
    lines, t = c.cmd("a", "STATUS dove (UIDVALIDITY UIDNEXT MAILBOXID)")
    assert lines == ['* STATUS "dove" (UIDNEXT 9 UIDVALIDITY 1234 '
                     'MAILBOXID (%s))' % guid.lower()], lines
    lines, t = c.cmd("b", "STATUS old (UIDVALIDITY UIDNEXT MAILBOXID)")
    m = re.fullmatch(r'\* STATUS "old" \(UIDNEXT 6 UIDVALIDITY 4321 '
                     r'MAILBOXID \(%s\)\)' % ID, lines[0])
    assert m, lines
    old = m.group(1)
    lines, t = c.cmd("c", "EXAMINE old")
    assert "* OK [MAILBOXID (%s)] Ok" % old in lines, lines
    lines, t = c.cmd("d", "UID FETCH 1:* (FLAGS)")
    assert len(lines) == 1 and re.fullmatch(
        r"\* 1 FETCH \((UID 5 FLAGS \(\\Seen\)|FLAGS \(\\Seen\) UID 5)\)",
        lines[0]), lines
    c.close()
    # The id was written down: a new process reads the same one.
    header = (md / ".old" / "postern-uidlist").read_text().split("\n")[0]
    assert header == "postern-uidlist 1 V4321 N6 G" + old, header
    mserver.stop()
    mserver.start()
    c = RawIMAP(mserver.imap_port)
    c.login(user)
    assert status_id(c, "a", "old") == old
    assert status_id(c, "b", "dove") == guid.lower()
    c.close()


def test_mbox_ids(make_server):
    """mbox keeps the id in its UID map beside the folder: RENAME keeps
    it, DELETE and CREATE give a new one."""
    s = make_server(imap=True, mail="mbox")
    deliver(s, "alice", "mbox-id")
    c = RawIMAP(s.imap_port)
    c.login("alice")
    inbox = select_id(c, "a", "INBOX")
    box = created(c, "b", "box")
    assert box != inbox
    assert status_id(c, "c", "box") == box
    _, t = c.cmd("d", "RENAME box moved")
    assert t == "d OK Rename completed."
    assert status_id(c, "e", "moved") == box
    _, t = c.cmd("f", "DELETE moved")
    assert t == "f OK Delete completed."
    again = created(c, "g", "moved")
    assert again not in (box, inbox)
    assert select_id(c, "h", "INBOX") == inbox
    c.close()
