"""
The sendmail / mailq / newaliases front-ends as scripts, cron and mail
user agents use them, and third-party clients (mail, mailx, swaks).
"""
import email.utils
import pwd
import re
import shutil

import pytest

from conftest import (HOSTNAME, REMOTE_DEFERRED, body_of, header_values,
                      make_msg, parse)


def login(srv):
    return pwd.getpwuid(srv.uid).pw_name


def test_sendmail_t_takes_recipients_from_headers(server):
    msg = ("From: alice@example.test\n"
           "To: demo@example.test\n"
           "Cc: Bob <bob@example.test>\n"
           "Bcc: carol@example.test\n"
           "Subject: sendmail-t\n"
           "\n"
           "hello from sendmail -t\n")
    r = server.sendmail("-t", input=msg)
    assert r.returncode == 0, r.err
    for user in ("demo", "bob", "carol"):
        server.wait_token(user, "sendmail-t")
    server.wait_queue_empty()
    for user in ("demo", "bob", "carol"):
        msgs = server.messages(user)
        assert len(msgs) == 1, user
        m = msgs[0]
        assert header_values(m, "Bcc") == [], user
        assert header_values(m, "To") == ["demo@example.test"]
        assert header_values(m, "Cc") == ["Bob <bob@example.test>"]
        assert body_of(m) == b"hello from sendmail -t\n"
    assert server.messages("alice") == []
    m = server.messages("demo")[0]
    assert header_values(m, "Return-Path") == [
        "<%s@%s>" % (login(server), HOSTNAME)]
    received = header_values(m, "Received")[0]
    assert "from userid %d" % server.uid in received, received


def test_sendmail_t_plus_command_line(server):
    msg = "To: demo@example.test\nSubject: t-plus-args\n\nx\n"
    r = server.sendmail("-t", "-i", "alice", input=msg)
    assert r.returncode == 0, r.err
    server.wait_token("demo", "t-plus-args")
    server.wait_token("alice", "t-plus-args")


def test_sendmail_f_sets_envelope_sender(server):
    for i, args in enumerate((["-f", "alice@example.test"],
                              ["-falice@example.test"],
                              ["-r", "alice@example.test"])):
        r = server.sendmail(*args, "demo",
                            input="Subject: envelope-%d\n\nx\n" % i)
        assert r.returncode == 0, (args, r.err)
        m = server.wait_token("demo", "envelope-%d" % i)[0]
        assert m.startswith(b"Return-Path: <alice@example.test>\n"), args


def test_sendmail_F_full_name(server):
    r = server.sendmail("-F", "Alice Example", "-f", "alice@example.test",
                        "demo", input="Subject: full-name\n\nx\n")
    assert r.returncode == 0, r.err
    m = server.wait_token("demo", "full-name")[0]
    froms = header_values(m, "From")
    assert len(froms) == 1, froms
    assert email.utils.parseaddr(froms[0]) == ("Alice Example",
                                               "alice@example.test")
    # A message with its own From: keeps it.
    r = server.sendmail("-F", "Somebody Else", "demo",
                        input="From: Carol <carol@example.test>\n"
                              "Subject: own-from\n\nx\n")
    assert r.returncode == 0, r.err
    m = server.wait_token("demo", "own-from")[0]
    assert header_values(m, "From") == ["Carol <carol@example.test>"]


def test_sendmail_i_keeps_dot_lines(server):
    text = "Subject: %s\n\nbefore\n.\n..two\nafter\n"
    for flag in ("-i", "-oi"):
        subject = "dot-lines" + flag
        r = server.sendmail(flag, "demo", input=text % subject)
        assert r.returncode == 0, r.err
        m = server.wait_token("demo", subject)[0]
        assert body_of(m) == b"before\n.\n..two\nafter\n", flag


def test_sendmail_dot_line_ends_input(server):
    r = server.sendmail("demo", input="Subject: dot-ends\n\nbefore\n.\n"
                                      "not part of it\n")
    assert r.returncode == 0, r.err
    m = server.wait_token("demo", "dot-ends")[0]
    assert body_of(m) == b"before\n"


def test_sendmail_unknown_user(server):
    r = server.sendmail("nosuchuser@example.test",
                        input="Subject: nobody\n\nx\n")
    assert r.returncode == 67, (r.returncode, r.err)   # EX_NOUSER
    assert "5.1.1" in r.out + r.err


def test_sendmail_bs(server):
    session = ("EHLO client.example.test\r\n"
               "MAIL FROM:<alice@example.test>\r\n"
               "RCPT TO:<demo@example.test>\r\n"
               "DATA\r\n"
               "Subject: via-bs\r\n\r\nbody\r\n.\r\n"
               "QUIT\r\n")
    r = server.sendmail("-bs", input=session)
    assert r.returncode == 0, r.err
    codes = [l[:3] for l in r.out.splitlines() if re.match(r"\d{3} ", l)]
    assert codes == ["220", "250", "250", "250", "354", "250", "221"], r.out
    assert re.search(r"^250 2\.0\.0 Ok: queued as \S+", r.out, re.M)
    m = server.wait_token("demo", "via-bs")[0]
    assert m.startswith(b"Return-Path: <alice@example.test>\n")


def test_mailq_and_sendmail_bp(make_server):
    server = make_server(conf=REMOTE_DEFERRED)
    q = server.mailq()
    assert q.returncode == 0
    assert q.out.strip() == "Mail queue is empty"
    qid = server.send("alice@example.test", "far@remote.example",
                      make_msg("stays-queued"))
    server.wait_deferred(qid)
    q = server.mailq()
    bp = server.sendmail("-bp")
    ql = server.postern("queue", "list")
    assert q.returncode == 0 and bp.returncode == 0 and ql.returncode == 0
    assert re.search(r"^%s\s" % qid, q.out, re.M), q.out
    assert q.out == bp.out == ql.out


def test_newaliases_and_sendmail_bi(server):
    for prog, alias in ((["newaliases"], "newlist"),
                        (["sendmail", "-bi"], "bilist")):
        server.write(server.dir / "aliases",
                     server.aliases_text + "%s: bob\n" % alias)
        server.aliases_text += "%s: bob\n" % alias
        r = server.run([server.bindir / prog[0]] + prog[1:])
        assert r.returncode == 0, (prog, r.err)
        server.send("alice@example.test", alias + "@example.test",
                    make_msg("to-" + alias))
        server.wait_token("bob", "to-" + alias)


def mua(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip("%s is not installed" % name)
    return path


def test_mail_mailutils(server):
    prog = mua("mail.mailutils")
    r = server.run([prog, "-s", "mailutils-subject", "-E",
                    "set sendmail=sendmail:%s" % (server.bindir / "sendmail"),
                    "demo"], input="hi from mailutils\n")
    assert r.returncode == 0, r.err
    m = server.wait_token("demo", "mailutils-subject")[0]
    assert body_of(m).startswith(b"hi from mailutils")
    assert header_values(m, "To") == ["demo"]


def test_mail_bsd_mailx(server):
    prog = mua("bsd-mailx")
    rc = server.write(server.dir / "mailrc",
                      "set sendmail=%s\n" % (server.bindir / "sendmail"))
    r = server.run([prog, "-s", "mailx-subject", "demo"],
                   input="hi from mailx\n", env={"MAILRC": str(rc)})
    assert r.returncode == 0, r.err
    m = server.wait_token("demo", "mailx-subject")[0]
    assert body_of(m).startswith(b"hi from mailx")


def test_swaks(server):
    prog = mua("swaks")
    r = server.run([prog, "--server", "127.0.0.1:%d" % server.smtp_port,
                    "--helo", "client.example.test",
                    "--from", "alice@example.test",
                    "--to", "demo@example.test",
                    "--header", "Subject: swaks-subject"], timeout=60)
    assert r.returncode == 0, r.out + r.err
    assert re.search(r"<-  250 2\.0\.0 Ok: queued as \S+", r.out), r.out
    m = server.wait_token("demo", "swaks-subject")[0]
    assert parse(m)["Subject"] == "swaks-subject"


def test_sendmail_while_server_stopped(server):
    """With posternd stopped, sendmail still takes the message (it writes
    the queue file itself, doc/internals.md) and it is delivered once
    Postern runs again."""
    server.stop()
    r = server.sendmail("demo", input="Subject: written-offline\n\nx\n")
    assert r.returncode == 0, (r.returncode, r.err)
    assert server.messages("demo") == []
    server.start()
    server.wait_token("demo", "written-offline")
    server.wait_queue_empty()
    assert len(server.messages("demo")) == 1
