"""
The mail store's cache and index seen from an IMAP client (imaplib): a
2,000-message Maildir, FETCH of ENVELOPE and BODYSTRUCTURE answered the
same whether the values are computed from the messages, read from the
cache, or computed again after the cache file was deleted or damaged;
header SEARCH the same with and without the cache; a flag changed by
renaming the file behind the server's back (as mutt does) seen by the
next command; the index files surviving a restart of the server with
UIDVALIDITY and UIDs kept.  (Modseqs themselves are tested in
testsuite/unit/test_store_index.c until IMAP prints them.)
"""
import imaplib
import os
import re
import time

import pytest

from conftest import PASSWORD, WAIT

SERVER_OPTIONS = {"imap": True, "users": ("demo", "ix1", "ix2", "ix3")}
COUNT = 2000
NAMES = ("Alice Martin", "Bob Chen", "=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=",
         "Dave Okafor")


def message(i):
    """Message i with the headers ENVELOPE and SEARCH look at; every
    tenth a multipart with an attachment, every seventh without Date:."""
    name = NAMES[i % len(NAMES)]
    lines = [
        "Received: from mx.example.org by mail.example.test; "
        "Mon, 3 Feb 2025 10:00:00 +0000",
        "From: %s <sender%d@example.org>" % (name, i % 50),
        "To: user%d@example.test, \"Second, Person\" <p2@example.test>"
        % i,
        "Subject: %s report %d" % ("Re:" if i % 3 == 0 else "[list]", i),
        "Message-ID: <m%d@example.org>" % i,
    ]
    if i % 5 == 0:
        lines.append("Cc: cc%d@example.net" % i)
    if i % 7 != 0:
        lines.append("Date: Mon, %d Feb 2025 11:%02d:00 +0100"
                     % (1 + i % 28, i % 60))
    if i % 10 == 0:
        lines += ["MIME-Version: 1.0",
                  'Content-Type: multipart/mixed; boundary="b%d"' % i, "",
                  "--b%d" % i, "Content-Type: text/plain; charset=utf-8",
                  "", "Body %d" % i, "--b%d" % i,
                  'Content-Type: application/pdf; name="r%d.pdf"' % i,
                  "Content-Transfer-Encoding: base64", "", "JVBERi0xLjQK",
                  "--b%d--" % i]
    else:
        lines += ["", "Body of message %d" % i, "second line"]
    return ("\n".join(lines) + "\n").encode()


def fill(server, user, count=COUNT):
    """Messages in cur/ as a delivery and a reader leave them."""
    md = server.maildir(user)
    server.make_home(user)
    for sub in ("cur", "new", "tmp"):
        server.mkdir(md / sub, 0o700)
    server.mkdir(md, 0o700)
    for i in range(count):
        p = md / "cur" / ("%d.M%dP1.test:2,%s" %
                          (1700000000 + i, i, "S" if i % 2 else ""))
        server.write(p, message(i), mode=0o600)
        os.utime(p, (1700000000 + i, 1700000000 + i))
    return md


def login(server, user):
    im = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=WAIT * 3)
    typ, data = im.login(user, PASSWORD)
    assert typ == "OK", data
    return im


def fetch_all(im, items):
    """{sequence number: the FETCH response's data} for 1:*."""
    typ, data = im.fetch("1:*", "(%s)" % items)
    assert typ == "OK", data
    out = {}
    cur = None
    for part in data:
        # imaplib gives literals as (prefix, literal) tuples.
        if isinstance(part, tuple):
            text = part[0] + b"{lit}" + part[1]
        else:
            text = part
        m = re.match(rb"(\d+) \(", text)
        if m:
            cur = int(m.group(1))
            out[cur] = text
        elif cur is not None:
            out[cur] += text
    return out


def search(im, *crit):
    typ, data = im.search(None, *crit)
    assert typ == "OK", data
    return [int(x) for x in data[0].split()]


def test_envelope_cache_survives_deletion(mserver):
    user = "ix1"
    md = fill(mserver, user)
    im = login(mserver, user)
    try:
        typ, data = im.select("INBOX")
        assert typ == "OK" and int(data[0]) == COUNT
        first = fetch_all(im, "ENVELOPE BODYSTRUCTURE")
        assert len(first) == COUNT
        # What a client sees: the envelope of message 4 (i = 3).
        assert b'"Re: report 3"' in first[4]
        assert b'("Dave Okafor" NIL "sender3" "example.org")' in first[4]
        assert b'"<m3@example.org>"' in first[4]
        assert b'(("Second, Person" NIL "p2" "example.test"))' not in \
            first[4]
        assert b'("Second, Person" NIL "p2" "example.test")' in first[4]
        # A multipart with its attachment (i = 10).
        assert b'"mixed"' in first[11] and b'"r10.pdf"' in first[11]
        # No Date: NIL in the envelope (i = 7).
        assert re.match(rb'8 \(ENVELOPE \(NIL "\[list\] report 7"',
                        first[8]), first[8][:80]
        cache = md / "postern-cache"
        assert wait_file(cache)

        # Again: from the cache, the same bytes.
        second = fetch_all(im, "ENVELOPE BODYSTRUCTURE")
        assert second == first

        # The cache file removed behind the server's back: computed
        # again, the same answer, and the file is made again.
        os.unlink(cache)
        im.noop()
        third = fetch_all(im, "ENVELOPE BODYSTRUCTURE")
        assert third == first
        assert wait_file(cache)

        # Damaged in the middle: still the same answer, from a new
        # session too.
        size = cache.stat().st_size
        with open(cache, "r+b") as f:
            f.seek(size // 2)
            f.write(b"\xff" * 4096)
        im2 = login(mserver, user)
        try:
            im2.select("INBOX")
            assert fetch_all(im2, "ENVELOPE BODYSTRUCTURE") == first
            assert fetch_all(im2, "BODY") == fetch_all(im, "BODY")
        finally:
            im2.logout()
    finally:
        im.logout()


def wait_file(path, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 64:
            return True
        time.sleep(0.05)
    return False


def expected_hits(pred):
    return [i + 1 for i in range(COUNT) if pred(i)]


def test_header_search_with_and_without_cache(mserver):
    user = "ix2"
    md = fill(mserver, user)
    im = login(mserver, user)
    try:
        im.select("INBOX")
        checks = [
            (('FROM', '"sender7@"'), lambda i: i % 50 == 7),
            # Encoded display name, matched decoded and case-folded.
            (('FROM', '"jörg müller"'), lambda i: i % 4 == 2),
            (('SUBJECT', '"report 19"'),
             lambda i: str(i).startswith("19")),
            (('SUBJECT', '"RE:"'), lambda i: i % 3 == 0),
            (('CC', '"cc10@"'), lambda i: i in (10,)),
            (('TO', '"p2@example"'), lambda i: True),
            (('SENTON', '3-Feb-2025'),
             lambda i: i % 7 != 0 and i % 28 == 2),
        ]

        def run():
            out = []
            for crit, _ in checks:
                if crit[1].isascii():
                    out.append(search(im, *crit))
                    continue
                # Non-ASCII text goes as a literal (RFC 3501 §6.4.4).
                im.literal = crit[1].strip('"').encode()
                out.append(search(im, "CHARSET", "UTF-8", crit[0]))
            return out

        cold = run()
        for (crit, pred), got in zip(checks, cold):
            assert got == expected_hits(pred), crit
        warm = run()
        assert warm == cold
        os.unlink(md / "postern-cache")
        im.noop()
        assert run() == cold
    finally:
        im.logout()


def test_external_flag_change_and_restart(make_server):
    server = make_server(imap=True, users=("ix3",))
    user = "ix3"
    md = fill(server, user, 200)
    im = login(server, user)
    try:
        typ, data = im.select("INBOX")
        assert int(data[0]) == 200
        typ, data = im.response("UIDVALIDITY")
        uidvalidity = data[0]
        typ, data = im.fetch("5", "(UID FLAGS)")
        assert b"\\Seen" not in data[0]
        uid5 = re.search(rb"UID (\d+)", data[0]).group(1)
        # mutt marks message 5 read and flagged: a rename.
        old = sorted((md / "cur").iterdir())[4]
        assert old.name.endswith(":2,")
        os.rename(old, md / "cur" / (old.name + "FS"))
        deadline = time.monotonic() + WAIT
        while True:
            im.noop()
            typ, data = im.fetch("5", "(FLAGS)")
            if b"\\Seen" in data[0] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert b"\\Seen" in data[0] and b"\\Flagged" in data[0]
        # A change through IMAP lands in the file name.
        typ, data = im.store("6", "+FLAGS", "(\\Answered)")
        assert typ == "OK"
        sixth = [p for p in (md / "cur").iterdir()
                 if p.name.startswith("1700000005.")]
        assert len(sixth) == 1 and sixth[0].name.endswith(":2,RS")
    finally:
        im.logout()
    assert (md / "postern-index").exists()
    server.stop()
    server.start()
    im = login(server, user)
    try:
        typ, data = im.select("INBOX")
        assert int(data[0]) == 200
        typ, data = im.response("UIDVALIDITY")
        assert data[0] == uidvalidity
        typ, data = im.fetch("5", "(UID FLAGS)")
        assert re.search(rb"UID (\d+)", data[0]).group(1) == uid5
        assert b"\\Seen" in data[0] and b"\\Flagged" in data[0]
        typ, data = im.fetch("6", "(FLAGS)")
        assert b"\\Answered" in data[0]
    finally:
        im.logout()
