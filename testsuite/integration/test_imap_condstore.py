"""
CONDSTORE and QRESYNC (RFC 7162) where the scripted suite cannot go: a
mailbox whose modseqs cannot be kept (NOMODSEQ, §3.1.2.2), and modseqs
and object ids that survive a restart of the server.
"""
import os
import re

from conftest import DEFAULT_USERS
from test_imap import RawIMAP, deliver

USERS = DEFAULT_USERS + ("cs1", "cs2")
SERVER_OPTIONS = {"imap": True, "users": USERS}


def code(lines, name):
    for l in lines:
        m = re.match(r"\* OK \[%s (\S+?)\]" % name, l)
        if m:
            return m.group(1)
    return None


def test_nomodseq_mailbox(mserver):
    """A folder whose index cannot be written (here a directory stands
    where the file goes) says NOMODSEQ once CONDSTORE is on, refuses the
    MODSEQ commands with BAD, gives HIGHESTMODSEQ 0 in STATUS, and keeps
    EXPUNGE responses even after ENABLE QRESYNC (§3.2.10)."""
    user = "cs1"
    c = RawIMAP(mserver.imap_port)
    c.login(user)
    _, t = c.cmd("a", "CREATE nomod")
    assert re.fullmatch(r"a OK \[MAILBOXID \([0-9a-f]{32}\)\] Create completed\.", t), t
    folder = mserver.maildir(user) / ".nomod"
    # CREATE made the index (its first sync gave the MAILBOXID).
    if os.path.isfile(folder / "postern-index"):
        os.unlink(folder / "postern-index")
    os.mkdir(folder / "postern-index")
    for i in range(2):
        _, t = c.cmd("b%d" % i, "APPEND nomod {1+}\r\nx")
        assert t.startswith("b%d OK " % i), t
    lines, t = c.cmd("c", "ENABLE QRESYNC")
    assert lines == ["* ENABLED QRESYNC"]
    lines, t = c.cmd("d", "SELECT nomod (CONDSTORE)")
    assert t == "d OK [READ-WRITE] Select completed."
    assert "* OK [NOMODSEQ] No permanent modsequences" in lines
    assert code(lines, "HIGHESTMODSEQ") is None
    for tag, cmd in (("e", "FETCH 1 (MODSEQ)"),
                     ("f", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)"),
                     ("g", "STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)")):
        lines, t = c.cmd(tag, cmd)
        assert t == tag + " BAD Mailbox has no modsequences (NOMODSEQ).", t
    lines, t = c.cmd("h", "STATUS nomod (HIGHESTMODSEQ)")
    assert lines == ['* STATUS "nomod" (HIGHESTMODSEQ 0)']
    # No MODSEQ in the FETCH of a STORE, EXPUNGE rather than VANISHED.
    lines, t = c.cmd("i", "STORE 1 +FLAGS (\\Deleted)")
    assert lines == ["* 1 FETCH (FLAGS (\\Deleted))"], lines
    lines, t = c.cmd("j", "EXPUNGE")
    assert lines == ["* 1 EXPUNGE"] and t == "j OK Expunge completed."
    # SELECT (QRESYNC ...) of it: as if nothing changed (§3.2.5.1).
    lines, t = c.cmd("k", "SELECT nomod (QRESYNC (1 1))")
    assert t == "k OK [READ-WRITE] Select completed."
    assert not [l for l in lines if "VANISHED" in l or "FETCH" in l]
    c.close()


def test_modseqs_and_ids_survive_restart(mserver):
    """After posternd restarts, HIGHESTMODSEQ, the messages' MODSEQs,
    EMAILIDs and the MAILBOXID are what they were, and a resync from the
    old HIGHESTMODSEQ reports nothing."""
    user = "cs2"
    for s in ("r1", "r2"):
        deliver(mserver, user, s)
    c = RawIMAP(mserver.imap_port)
    c.login(user)
    lines, _ = c.cmd("a", "SELECT INBOX (CONDSTORE)")
    hms, mbid = code(lines, "HIGHESTMODSEQ"), code(lines, "MAILBOXID")
    c.cmd("b", "STORE 2 +FLAGS.SILENT (\\Flagged)")
    lines, _ = c.cmd("c", "FETCH 1:* (MODSEQ EMAILID)")
    before = sorted(lines)
    lines, _ = c.cmd("d", "NOOP")
    lines, _ = c.cmd("e", "STATUS INBOX (HIGHESTMODSEQ)")
    hms2 = re.search(r"HIGHESTMODSEQ (\d+)", lines[0]).group(1)
    assert int(hms2) > int(hms)
    c.close()
    mserver.stop()
    mserver.start()
    c = RawIMAP(mserver.imap_port)
    c.login(user)
    lines, _ = c.cmd("a", "SELECT INBOX (CONDSTORE)")
    assert code(lines, "HIGHESTMODSEQ") == hms2
    assert code(lines, "MAILBOXID") == mbid
    lines, _ = c.cmd("c", "FETCH 1:* (MODSEQ EMAILID)")
    assert sorted(lines) == before
    lines, t = c.cmd("d", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %s)" % hms2)
    assert lines == [] and t == "d OK Fetch completed."
    c.close()
