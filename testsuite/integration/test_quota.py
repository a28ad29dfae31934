"""
Quota (RFC 9208 QUOTA with STORAGE and MESSAGE): limits from quota_rule
and the passwd-file field userdb_quota_rule, usage in Maildir++
maildirsize; what IMAP clients see (GETQUOTAROOT, GETQUOTA, SETQUOTA,
APPEND/COPY refused with [OVERQUOTA]) and what an SMTP sender sees when
the recipient's mailbox is full (a 5.2.2 bounce, nothing lost).
"""
import imaplib
import re

from conftest import PASSWORD, WAIT, make_msg
from test_local import assert_bounce


def login(server, user):
    im = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=WAIT)
    typ, data = im.login(user, PASSWORD)
    assert typ == "OK", data
    return im


def deliver(server, user, subject, body="hello\n"):
    server.send("sender@example.test", "%s@example.test" % user,
                make_msg(subject, body=body, sender="sender@example.test",
                         to="%s@example.test" % user))
    server.wait_token(user, subject)


def set_user_extra(server, user, extra):
    """Give user the passwd-file extra field extra (Dovecot's 8th
    field)."""
    path = server.dir / "users"
    lines = []
    for line in path.read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            f += [""] * (8 - len(f))
            f = f[:7] + [extra]
            line = ":".join(f)
        lines.append(line)
    server.write(path, "\n".join(lines) + "\n", mode=0o600)


def quota_of(im, mailbox="INBOX"):
    """GETQUOTAROOT: (roots, {resource: (usage, limit)})."""
    typ, data = im._simple_command("GETQUOTAROOT", mailbox)
    assert typ == "OK", data
    roots = im.untagged_responses.pop("QUOTAROOT", [])
    quotas = im.untagged_responses.pop("QUOTA", [])
    res = {}
    for q in quotas:
        m = re.fullmatch(rb'"" \(([A-Z0-9 ]*)\)', q)
        assert m, q
        w = m.group(1).split()
        for i in range(0, len(w), 3):
            res[w[i].decode()] = (int(w[i + 1]), int(w[i + 2]))
    return roots, res


def append(im, mailbox, subject, body="hello\n"):
    msg = make_msg(subject, body=body)
    if isinstance(msg, str):
        msg = msg.encode()
    msg = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return im.append(mailbox, None, None, msg)


def test_imap_quota_storage_and_messages(make_server):
    srv = make_server(imap=True,
                      conf="quota_rule = *:storage=40k:messages=3\n")
    deliver(srv, "demo", "first-one")
    im = login(srv, "demo")
    typ, caps = im.capability()
    assert b"QUOTA" in caps[0].split()
    assert b"QUOTA=RES-STORAGE" in caps[0].split()
    roots, res = quota_of(im)
    assert roots == [b'"INBOX" ""'], roots
    assert res["MESSAGE"] == (1, 3)
    assert res["STORAGE"][1] == 40 and 1 <= res["STORAGE"][0] <= 2, res
    # GETQUOTA of the root says the same
    typ, data = im._simple_command("GETQUOTA", '""')
    assert typ == "OK"
    assert im.untagged_responses.pop("QUOTA")[0].startswith(
        b'"" (STORAGE ')
    # an unknown root
    typ, data = im._simple_command("GETQUOTA", "other")
    assert typ == "NO" and b"NONEXISTENT" in data[0], data

    # a message larger than what is left: NO [OVERQUOTA], nothing saved
    big = ("z" * 70 + "\n") * 600                       # about 42 kB
    typ, data = append(im, "INBOX", "too-big", big)
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
    typ, data = im.select("INBOX")
    assert data == [b"1"]

    # the message limit: 3 in all
    assert append(im, "INBOX", "second")[0] == "OK"
    assert append(im, "INBOX", "third")[0] == "OK"
    typ, data = append(im, "INBOX", "fourth")
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
    # COPY over quota is refused as a whole
    typ, data = im.create("Other")
    assert typ == "OK"
    typ, data = im.copy("1", "Other")
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
    typ, data = im.status("Other", "(MESSAGES)")
    assert b"MESSAGES 0" in data[0]
    assert quota_of(im)[1]["MESSAGE"] == (3, 3)

    # MOVE stays within one quota root: allowed even when full
    typ, data = im._simple_command("MOVE", "1", "Other")
    assert typ == "OK", data
    assert quota_of(im)[1]["MESSAGE"] == (3, 3)

    # EXPUNGE gives the room back
    before = quota_of(im)[1]["STORAGE"][0]
    im.store("1", "+FLAGS", "\\Deleted")
    typ, data = im.expunge()
    assert typ == "OK"
    after = quota_of(im)[1]
    assert after["MESSAGE"] == (2, 3), after
    assert after["STORAGE"][0] < before or before <= 1
    assert append(im, "INBOX", "fits-again")[0] == "OK"

    # SETQUOTA is parsed and refused: limits are the administrator's
    typ, data = im._simple_command("SETQUOTA", '""', "(STORAGE 512)")
    assert typ == "NO" and b"NOPERM" in data[0], data
    try:
        typ, data = im._simple_command("SETQUOTA", '""', "(STORAGE x)")
        assert False, "no BAD for a bad SETQUOTA"
    except imaplib.IMAP4.error as e:
        assert "BAD" in str(e)
    im.logout()
    # the usage file is the Maildir++ one
    text = (srv.maildir("demo") / "maildirsize").read_text()
    assert text.splitlines()[0] == "40960S,3C", text


def test_catenate_counts_against_quota(make_server):
    """A message built by CATENATE (RFC 4469) is checked like any other
    APPEND; one over message_size_limit is [TOOBIG]."""
    srv = make_server(imap=True, conf="quota_rule = *:messages=2\n"
                                      "message_size_limit = 2000\n")
    deliver(srv, "demo", "source")
    im = login(srv, "demo")
    typ, data = im._simple_command("APPEND", "INBOX",
                                   'CATENATE (URL "/INBOX/;UID=1")')
    assert typ == "OK", data
    typ, data = im._simple_command("APPEND", "INBOX",
                                   'CATENATE (URL "/INBOX/;UID=1")')
    assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), data
    assert im.select("INBOX")[0] == "OK"
    im.store("2", "+FLAGS", "\\Deleted")
    im.expunge()
    parts = " ".join(['URL "/INBOX/;UID=1"'] * 6)      # over 2000 bytes
    typ, data = im._simple_command("APPEND", "INBOX",
                                   "CATENATE (%s)" % parts)
    assert typ == "NO" and data[0].startswith(b"[TOOBIG]"), data
    assert quota_of(im)[1]["MESSAGE"] == (1, 2)
    im.logout()


def test_maildirsize_rebuilt_when_wrong(make_server):
    srv = make_server(imap=True, conf="quota_rule = *:messages=10\n")
    deliver(srv, "demo", "one")
    deliver(srv, "demo", "two")
    im = login(srv, "demo")
    assert quota_of(im)[1] == {"MESSAGE": (2, 10)}
    # another program's deletion recorded nowhere, and a file written
    # for another limit: recounted from the folder
    path = srv.maildir("demo") / "maildirsize"
    srv.write(path, "999S\n100 50\n", mode=0o600)
    assert quota_of(im)[1] == {"MESSAGE": (2, 10)}
    assert path.read_text().splitlines()[0] == "10C"
    im.logout()


def test_no_quota_configured(make_server):
    srv = make_server(imap=True)
    deliver(srv, "demo", "plain")
    im = login(srv, "demo")
    roots, res = quota_of(im)
    assert roots == [b'"INBOX"'] and res == {}
    typ, data = im._simple_command("GETQUOTA", '""')
    assert typ == "NO"
    typ, data = im._simple_command("GETQUOTAROOT", "Nope")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    im.logout()
    assert not (srv.maildir("demo") / "maildirsize").exists()


def test_smtp_to_user_over_quota_bounces(make_server):
    """The per-user rule of the passwd-file wins over quota_rule; a
    message that does not fit bounces to the sender with 5.2.2 and
    its text, and nothing is lost."""
    srv = make_server(imap=True, conf="quota_rule = *:storage=1G\n",
                      start=False)
    set_user_extra(srv, "demo", "userdb_quota_rule=*:storage=16k")
    srv.start()
    body = ("y" * 70 + "\n") * 170                      # about 12 kB
    deliver(srv, "demo", "fits-in-quota", body)
    srv.send("alice@example.test", "demo@example.test",
             make_msg("over-the-quota", body))
    report = srv.wait_token("alice", "over-the-quota")[0]
    text = assert_bounce(report, r"demo@example\.test", "5.2.2",
                         "over-the-quota")
    assert "Quota exceeded (mailbox for user is full)" in text
    srv.wait_queue_empty()
    assert len(srv.messages("demo")) == 1
    srv.wait_log(r"to=<demo@example\.test>.*dsn=5\.2\.2.*status=bounced")
    # alice has the global 1G: mail to her still arrives
    deliver(srv, "alice", "alice-gets-mail", body)
    im = login(srv, "demo")
    roots, res = quota_of(im)
    assert res["STORAGE"][1] == 16
    im.logout()


def test_mbox_storage_from_file_sizes(make_server):
    srv = make_server(imap=True, mail="mbox",
                      conf="quota_rule = *:storage=10M\n")
    deliver(srv, "demo", "mbox-one", ("q" * 70 + "\n") * 40)
    im = login(srv, "demo")
    roots, res = quota_of(im)
    assert list(res) == ["STORAGE"]
    assert res["STORAGE"][0] >= 3 and res["STORAGE"][1] == 10240, res
    im.logout()
