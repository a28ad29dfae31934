"""
Thunderbird's way with an IMAP server, replayed byte for byte on a raw
socket: its startup (CAPABILITY, ID, ENABLE CONDSTORE or QRESYNC, LIST
(SUBSCRIBED) ... RETURN (SPECIAL-USE), SELECT with CONDSTORE), the
quick resynchronisation after being offline (UID FETCH ... (CHANGEDSINCE
n), or SELECT ... (QRESYNC ...)), and IDLE hearing a flag change made by
another session with its MODSEQ (RFC 7162).  Thunderbird writes some
commands in lower case and quotes mailbox names; so do we.
"""
import re

from conftest import DEFAULT_USERS, PASSWORD
from test_imap import RawIMAP, deliver

USERS = DEFAULT_USERS + ("tb1", "tb2")
SERVER_OPTIONS = {"imap": True, "users": USERS}

TB_ID = ('ID ("name" "Thunderbird" "version" "115.3.1" '
         '"vendor" "Mozilla")')
HEADERS = ("BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date "
           "Message-ID Priority X-Priority References Newsgroups "
           "In-Reply-To Content-Type Reply-To)]")


def code(lines, name):
    """The number of the response code [name n] in lines, or None."""
    for l in lines:
        m = re.match(r"\* OK \[%s (\d+)\]" % name, l)
        if m:
            return int(m.group(1))
    return None


def fetches(lines):
    """UID -> (flags, modseq or None) of the FETCH responses in lines."""
    out = {}
    for l in lines:
        if not re.match(r"\* \d+ FETCH ", l):
            continue
        uid = int(re.search(r"UID (\d+)", l).group(1))
        flags = re.search(r"FLAGS \(([^)]*)\)", l)
        modseq = re.search(r"MODSEQ \((\d+)\)", l)
        out[uid] = (set(flags.group(1).split()) if flags else None,
                    int(modseq.group(1)) if modseq else None)
    return out


def startup(port, user, enable):
    """Thunderbird's first commands on a new connection; returns the
    connection and what LIST said."""
    c = RawIMAP(port)
    assert c.line().startswith("* OK ")
    lines, t = c.cmd("1", "capability")
    assert t.startswith("1 OK ")
    assert "ID" in lines[0].split() and "ENABLE" in lines[0].split()
    # It takes the capabilities after login from the tagged OK.
    _, t = c.cmd("2", 'login "%s" "%s"' % (user, PASSWORD))
    m = re.fullmatch(r"2 OK \[CAPABILITY ([^]]*)\] Logged in", t)
    assert m, t
    for cap in ("IMAP4rev1", "ID", "ENABLE", "IDLE", "CONDSTORE",
                "QRESYNC", "LIST-EXTENDED", "SPECIAL-USE", "UIDPLUS"):
        assert cap in m.group(1).split(), cap
    lines, t = c.cmd("3", TB_ID)
    assert t == "3 OK ID completed."
    assert lines[0].startswith('* ID ("name" "Postern"')
    lines, t = c.cmd("4", "ENABLE " + enable)
    assert lines == ["* ENABLED " + enable] and t == "4 OK Enabled."
    lines, t = c.cmd("5", 'list (subscribed) "" "*" return (special-use)')
    assert t == "5 OK List completed."
    return c, lines


def test_thunderbird_condstore_resync_and_idle(mserver):
    user = "tb1"
    for s in ("first", "second", "third"):
        deliver(mserver, user, s)
    # The first start: everything is new to it.
    c, listed = startup(mserver.imap_port, user, "CONDSTORE")
    # The special-use folders made at the first login are subscribed.
    assert any(l.startswith("* LIST (") and "\\Sent" in l and
               l.endswith(' "/" "Sent"') for l in listed), listed
    lines, t = c.cmd("6", 'select "INBOX" (CONDSTORE)')
    assert t == "6 OK [READ-WRITE] Select completed."
    assert "* 3 EXISTS" in lines
    uidvalidity = code(lines, "UIDVALIDITY")
    hms = code(lines, "HIGHESTMODSEQ")
    assert uidvalidity and hms
    lines, t = c.cmd("7", "UID fetch 1:* (FLAGS)")
    assert t == "7 OK Fetch completed."
    assert sorted(fetches(lines)) == [1, 2, 3]
    lines, t = c.cmd("8", "UID fetch 1:* (UID RFC822.SIZE FLAGS %s)" %
                     HEADERS)
    assert t == "8 OK Fetch completed."
    _, t = c.cmd("9", "logout")
    assert t == "9 OK Logout completed."
    c.close()

    # While it is away another client reads one, deletes one, and a
    # message arrives.
    o = RawIMAP(mserver.imap_port)
    o.login(user)
    o.cmd("a", "SELECT INBOX")
    _, t = o.cmd("b", "UID STORE 2 +FLAGS.SILENT (\\Seen)")
    assert t == "b OK Store completed."
    _, t = o.cmd("c", "UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    _, t = o.cmd("d", "EXPUNGE")
    assert t == "d OK Expunge completed."
    deliver(mserver, user, "fourth")

    # Back: the same modseq tells only what changed.
    c, _ = startup(mserver.imap_port, user, "CONDSTORE")
    lines, t = c.cmd("6", 'select "INBOX" (CONDSTORE)')
    assert t == "6 OK [READ-WRITE] Select completed."
    assert code(lines, "UIDVALIDITY") == uidvalidity
    hms2 = code(lines, "HIGHESTMODSEQ")
    assert hms2 > hms
    assert "* 3 EXISTS" in lines
    lines, t = c.cmd("7", "UID fetch 1:* (FLAGS) (CHANGEDSINCE %d)" % hms)
    assert t == "7 OK Fetch completed."
    got = fetches(lines)
    assert sorted(got) == [2, 4], lines
    assert "\\Seen" in got[2][0] and "\\Seen" not in got[4][0]
    assert all(hms < m <= hms2 for _, m in got.values())
    # Nothing changed since the new HIGHESTMODSEQ.
    lines, t = c.cmd("8", "UID fetch 1:* (FLAGS) (CHANGEDSINCE %d)" % hms2)
    assert lines == [] and t == "8 OK Fetch completed."

    # IDLE: another session flags a message; the change arrives with
    # its UID and a MODSEQ above what the client knew.
    c.send("9 IDLE\r\n")
    assert c.line() == "+ idling"
    _, t = o.cmd("e", "UID STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert t == "e OK Store completed."
    l = c.line()
    m = re.fullmatch(r"\* 1 FETCH \(UID 1 FLAGS \(([^)]*)\) "
                     r"MODSEQ \((\d+)\)\)", l)
    assert m, l
    assert "\\Flagged" in m.group(1).split()
    assert int(m.group(2)) > hms2
    c.send("DONE\r\n")
    assert c.line() == "9 OK Idle completed."
    # The modseq it was told is where a later resync starts: nothing.
    lines, t = c.cmd("10", "UID fetch 1:* (FLAGS) (CHANGEDSINCE %s)" %
                     m.group(2))
    assert lines == [] and t == "10 OK Fetch completed."
    c.close()
    o.close()


def test_thunderbird_qresync(mserver):
    user = "tb2"
    for s in ("q1", "q2", "q3", "q4"):
        deliver(mserver, user, s)
    c, _ = startup(mserver.imap_port, user, "QRESYNC")
    lines, t = c.cmd("6", 'select "INBOX"')
    assert t == "6 OK [READ-WRITE] Select completed."
    uidvalidity = code(lines, "UIDVALIDITY")
    hms = code(lines, "HIGHESTMODSEQ")
    lines, t = c.cmd("7", "UID fetch 1:* (FLAGS)")
    assert sorted(fetches(lines)) == [1, 2, 3, 4]
    c.close()

    o = RawIMAP(mserver.imap_port)
    o.login(user)
    o.cmd("a", "SELECT INBOX")
    o.cmd("b", "UID STORE 1 +FLAGS.SILENT (\\Answered)")
    o.cmd("c", "UID STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    _, t = o.cmd("d", "EXPUNGE")
    assert t == "d OK Expunge completed."

    # One SELECT says what went and what changed (RFC 7162 §3.2.5).
    c, _ = startup(mserver.imap_port, user, "QRESYNC")
    lines, t = c.cmd("6", 'select "INBOX" (QRESYNC (%d %d 1:4))' %
                     (uidvalidity, hms))
    assert t == "6 OK [READ-WRITE] Select completed."
    assert "* VANISHED (EARLIER) 2,4" in lines
    got = fetches(lines)
    assert sorted(got) == [1] and "\\Answered" in got[1][0]
    assert lines.index("* VANISHED (EARLIER) 2,4") < [
        i for i, l in enumerate(lines) if " FETCH " in l][0]
    hms2 = code(lines, "HIGHESTMODSEQ")

    # Idling, it hears an expunge as VANISHED and a flag change with
    # its MODSEQ.
    c.send("7 IDLE\r\n")
    assert c.line() == "+ idling"
    o.cmd("e", "UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    l = c.line()
    m = re.fullmatch(r"\* 2 FETCH \(UID 3 FLAGS \(\\Deleted\) "
                     r"MODSEQ \((\d+)\)\)", l)
    assert m and int(m.group(1)) > hms2, l
    _, t = o.cmd("f", "EXPUNGE")
    assert t.startswith("f OK ")
    assert c.line() == "* VANISHED 3"
    c.send("DONE\r\n")
    assert c.line() == "7 OK Idle completed."
    lines, t = c.cmd("8", "UID fetch 1:* (FLAGS) (CHANGEDSINCE %d "
                     "VANISHED)" % hms2)
    assert lines == ["* VANISHED (EARLIER) 3"], lines
    c.close()
    o.close()
