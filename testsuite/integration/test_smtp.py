"""
smtpd as SMTP clients see it: replies, extensions, limits, relay policy,
headers added on the way into the mailbox, Maildir and mbox delivery,
BDAT, DSN parameters and SMTPUTF8.
"""
import email.utils
import re
import select
import smtplib
import socket
import time

import pytest

from conftest import (HOSTNAME, PASSWORD, REMOTE_DEFERRED, body_of, crlf,
                      header_values, headers, make_msg, parse)

LIMIT = 20000
SERVER_OPTIONS = {"conf": "message_size_limit = %d\n"
                          "smtpd_recipient_limit = 5\n" % LIMIT}


def ehlo(raw):
    raw.expect(220)
    return raw.expect(250, "EHLO client.example.test\r\n")


# ---------------------------------------------------------------- replies

def test_greeting(mserver):
    raw = mserver.raw()
    code, lines = raw.reply()
    assert code == 220
    assert lines == ["%s ESMTP Postern" % HOSTNAME]


def test_ehlo_extensions(mserver):
    with mserver.smtp() as s:
        code, text = s.ehlo()
        assert code == 250
        assert text.decode().splitlines()[0] == HOSTNAME
        f = s.esmtp_features
        for ext in ("pipelining", "enhancedstatuscodes", "8bitmime", "dsn",
                    "smtputf8", "chunking"):
            assert ext in f, (ext, text)
        assert f["size"] == str(LIMIT)
        # VRFY is disabled by default: not advertised.
        assert "vrfy" not in f


def test_helo(mserver):
    with mserver.smtp() as s:
        code, text = s.helo()
        assert code == 250
        assert text.decode() == HOSTNAME


def test_rset_noop_help_quit(mserver):
    raw = mserver.raw()
    ehlo(raw)
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    code, lines = raw.cmd("RSET")
    assert (code, lines[0]) == (250, "2.0.0 Ok")
    # RSET ended the transaction: RCPT now needs a new MAIL.
    code, lines = raw.cmd("RCPT TO:<demo@example.test>")
    assert code == 503 and lines[0].startswith("5.5.1"), lines
    code, lines = raw.cmd("NOOP")
    assert (code, lines[0]) == (250, "2.0.0 Ok")
    code, lines = raw.cmd("HELP")
    assert code == 214 and lines[0].startswith("2.0.0"), lines
    code, lines = raw.cmd("QUIT")
    assert code == 221 and lines[0].startswith("2.0.0"), lines
    assert raw.at_eof()


def test_vrfy_252_expn_502(mserver):
    raw = mserver.raw()
    ehlo(raw)
    code, lines = raw.cmd("VRFY demo")
    assert code == 252
    assert lines[0].startswith("2.0.0 Cannot VRFY user"), lines
    code, lines = raw.cmd("EXPN demo")
    assert code == 502 and lines[0].startswith("5.5.1"), lines


def test_unknown_command(mserver):
    raw = mserver.raw()
    ehlo(raw)
    code, lines = raw.cmd("FROBNICATE now")
    assert code == 502 and lines[0].startswith("5.5.2"), lines
    assert raw.cmd("NOOP")[0] == 250


def test_command_sequence_errors(mserver):
    raw = mserver.raw()
    ehlo(raw)
    code, lines = raw.cmd("RCPT TO:<demo@example.test>")
    assert code == 503 and lines[0] == "5.5.1 Error: need MAIL command"
    code, lines = raw.cmd("DATA")
    assert code == 503 and lines[0].startswith("5.5.1"), lines
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    code, lines = raw.cmd("MAIL FROM:<alice@example.test>")
    assert code == 503 and lines[0] == "5.5.1 Error: nested MAIL command"
    code, lines = raw.cmd("DATA")
    assert code == 503 and lines[0] == "5.5.1 Error: need RCPT command"


def test_syntax_errors(mserver):
    raw = mserver.raw()
    ehlo(raw)
    code, lines = raw.cmd("MAIL TO:<alice@example.test>")
    assert code == 501 and lines[0].startswith("5.5.4"), lines
    code, lines = raw.cmd("MAIL FROM:<alice@@example.test>")
    assert code == 501 and lines[0].startswith("5.1.7"), lines
    code, lines = raw.cmd("MAIL FROM:<alice@example.test> FROBNICATE=1")
    assert code == 555 and lines[0].startswith("5.5.4"), lines
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    code, lines = raw.cmd("RCPT TO:<demo@@example.test>")
    assert code == 501 and lines[0].startswith("5.1.3"), lines
    code, lines = raw.cmd("RCPT TO:<demo@example.test> NOTIFY=SOMETIMES")
    assert code == 501 or code == 555, (code, lines)
    assert lines[0].startswith("5."), lines


def test_line_too_long(mserver):
    raw = mserver.raw()
    ehlo(raw)
    code, lines = raw.cmd("NOOP " + "x" * 5000)
    assert code == 500
    assert lines[0] == "5.5.2 Error: line too long"
    # the session goes on, in sync
    assert raw.cmd("NOOP") == (250, ["2.0.0 Ok"])
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250


def test_nul_byte_in_command(mserver):
    raw = mserver.raw()
    ehlo(raw)
    code, lines = raw.cmd("NOOP a\0b")
    assert code == 500 and lines[0].startswith("5.5.2"), lines
    assert raw.cmd("NOOP")[0] == 250


def test_recipient_limit(mserver):
    raw = mserver.raw()
    ehlo(raw)
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    for i in range(5):
        assert raw.cmd("RCPT TO:<demo@example.test>")[0] == 250
    code, lines = raw.cmd("RCPT TO:<bob@example.test>")
    assert code == 452
    assert lines[0] == "4.5.3 Error: too many recipients"


# ------------------------------------------------------------- recipients

def test_unknown_user_rejected(mserver):
    raw = mserver.raw()
    ehlo(raw)
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    code, lines = raw.cmd("RCPT TO:<nosuchuser@example.test>")
    assert code == 550
    assert lines[0] == ("5.1.1 <nosuchuser@example.test>: Recipient address "
                        "rejected: User unknown in local recipient table")
    # the other local names in mydestination, and an unqualified name
    for rcpt in ("nosuchuser@mail.example.test", "nosuchuser@localhost",
                 "nosuchuser"):
        code, lines = raw.cmd("RCPT TO:<%s>" % rcpt)
        assert code == 550 and lines[0].startswith("5.1.1"), (rcpt, lines)
    assert raw.cmd("RCPT TO:<demo@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<demo@Mail.Example.TEST>")[0] == 250
    mserver.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: "
                     r"550 5\.1\.1 <nosuchuser@example\.test>")


def test_relay_from_mynetworks_accepted(mserver):
    raw = mserver.raw()
    ehlo(raw)
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    code, lines = raw.cmd("RCPT TO:<someone@remote.example>")
    assert code == 250 and lines[0].startswith("2.1.5"), lines
    raw.cmd("RSET")


def test_relay_denied_outside_mynetworks(make_server):
    # 127.0.0.1 is not in mynetworks here
    srv = make_server(mynetworks="10.9.9.0/24")
    raw = srv.raw()
    ehlo(raw)
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    code, lines = raw.cmd("RCPT TO:<someone@remote.example>")
    # Postfix's default smtpd_relay_restrictions end in
    # defer_unauth_destination: 454, a temporary refusal
    assert code == 454
    assert lines[0] == "4.7.1 <someone@remote.example>: Relay access denied"
    # mail for our own domains is still accepted from anyone
    assert raw.cmd("RCPT TO:<demo@example.test>")[0] == 250


# --------------------------------------------------------------- size

def test_size_parameter_over_limit(mserver):
    raw = mserver.raw()
    ehlo(raw)
    code, lines = raw.cmd("MAIL FROM:<alice@example.test> SIZE=%d" %
                          (LIMIT + 1))
    assert code == 552 and lines[0].startswith("5.3.4"), lines
    code, lines = raw.cmd("MAIL FROM:<alice@example.test> SIZE=%d" %
                          (LIMIT // 2))
    assert code == 250, lines


def test_oversize_message_rejected_after_data(mserver):
    subject = "oversize-big-14"
    small = "oversize-small-14"
    big = make_msg(subject, ("x" * 70 + "\n") * (LIMIT // 70 + 50))
    with mserver.smtp() as s:
        s.ehlo()
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("demo@example.test")[0] == 250
        code, text = s.data(crlf(big))
        assert code == 552
        assert text.decode().startswith("5.3.4 Message size exceeds fixed "
                                        "maximum message size")
        # the session is still usable and in sync
        assert s.noop()[0] == 250
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("demo@example.test")[0] == 250
        code, text = s.data(crlf(make_msg(small)))
        assert code == 250
    mserver.wait_token("demo", small)
    mserver.wait_queue_empty(subdirs=("tmp", "incoming"))
    assert mserver.with_token("demo", subject) == []


# ---------------------------------------------------------- delivery

def test_delivery_adds_headers(mserver):
    """A message with no From/Date/Message-ID gets them, plus Received
    with the queue ID, Return-Path and Delivered-To."""
    subject = "headers-test-1"
    msg = "Subject: %s\n\nbody line one\nbody line two\n" % subject
    qid = mserver.send("alice@example.test", "demo@example.test", msg)
    raw = mserver.wait_token("demo", subject)[0]
    assert raw.startswith(b"Return-Path: <alice@example.test>\n"), raw[:200]
    assert header_values(raw, "Delivered-To") == ["demo@example.test"]
    received = header_values(raw, "Received")
    assert len(received) == 1, received
    r = received[0]
    assert re.search(r"\bby %s \(Postern\) with ESMTP id %s\b" %
                     (re.escape(HOSTNAME), qid), r), r
    assert "[127.0.0.1]" in r
    assert "for <demo@example.test>" in r
    assert email.utils.parsedate_to_datetime(r.rsplit(";", 1)[1].strip())
    dates = header_values(raw, "Date")
    assert len(dates) == 1 and email.utils.parsedate_to_datetime(dates[0])
    mids = header_values(raw, "Message-ID")
    assert len(mids) == 1
    assert re.fullmatch(r"<\d{14}\.%s@%s>" % (qid, re.escape(HOSTNAME)),
                        mids[0]), mids
    froms = header_values(raw, "From")
    assert len(froms) == 1
    assert email.utils.parseaddr(froms[0])[1] == "alice@example.test"
    assert body_of(raw) == b"body line one\nbody line two\n"
    # Return-Path and Delivered-To come before everything smtpd wrote.
    names = [n.lower() for n, v in headers(raw)]
    assert names.index("return-path") < names.index("received")
    assert names.index("delivered-to") < names.index("received")


def test_existing_headers_kept(mserver):
    subject = "headers-test-2"
    date = "Mon, 02 Jan 2006 15:04:05 -0700"
    msg = ("From: Alice Example <alice@example.test>\n"
           "To: demo@example.test\n"
           "Date: %s\n"
           "Message-ID: <keep-me@client.example.test>\n"
           "Subject: %s\n\nbody\n" % (date, subject))
    mserver.send("bounces@example.test", "demo@example.test", msg)
    raw = mserver.wait_token("demo", subject)[0]
    assert header_values(raw, "Date") == [date]
    assert header_values(raw, "Message-ID") == [
        "<keep-me@client.example.test>"]
    assert header_values(raw, "From") == ["Alice Example <alice@example.test>"]
    assert raw.startswith(b"Return-Path: <bounces@example.test>\n")


def test_message_without_headers(mserver):
    """No header block at all: the text is body, headers are added."""
    token = "just-some-text-no-headers-3"
    mserver.send("alice@example.test", "demo@example.test",
                 "%s\nsecond line\n" % token)
    raw = mserver.wait_token("demo", token)[0]
    m = parse(raw)
    assert m["From"] and m["Date"] and m["Message-ID"], raw[:400]
    assert token.encode() in body_of(raw)


def test_null_sender(mserver):
    subject = "null-sender-4"
    mserver.send("<>", "demo@example.test", "Subject: %s\n\nx\n" % subject)
    raw = mserver.wait_token("demo", subject)[0]
    assert raw.startswith(b"Return-Path: <>\n"), raw[:100]
    assert email.utils.parseaddr(header_values(raw, "From")[0])[1] == \
        "MAILER-DAEMON@" + HOSTNAME


def test_submission_port_delivers(mserver):
    """Submission needs a login first (submission_auth_required)."""
    subject = "via-submission-5"
    with mserver.smtp(mserver.submission_port) as s:
        assert s.login("alice", PASSWORD)[0] == 235
        s.sendmail("alice@example.test", ["bob@example.test"],
                   crlf(make_msg(subject)))
    mserver.wait_token("bob", subject)


def test_8bit_body_kept(mserver):
    subject = "eight-bit-6"
    body = "Gr\u00fc\u00dfe aus K\u00f6ln \u2013 \u00e9t\u00e9\n".encode()
    msg = (b"Subject: " + subject.encode() + b"\n"
           b"Content-Type: text/plain; charset=utf-8\n"
           b"Content-Transfer-Encoding: 8bit\n\n" + body)
    mserver.send("alice@example.test", "demo@example.test", msg,
                 mail_options=["BODY=8BITMIME"])
    raw = mserver.wait_token("demo", subject)[0]
    assert body_of(raw) == body


def test_mbox_delivery(make_server):
    srv = make_server(mail="mbox")
    body = ("From the start of a line\n"
            ">From already quoted\n"
            "Fromage is not quoted\n"
            "last line\n")
    srv.send("alice@example.test", "demo@example.test",
             make_msg("mbox-one", body))
    srv.send("<>", "demo@example.test", make_msg("mbox-two"))
    srv.wait_messages("demo", 2)
    srv.wait_queue_empty()
    msgs = srv.messages("demo")
    assert len(msgs) == 2
    path = srv.mbox_path("demo")
    text = path.read_bytes()
    assert (path.stat().st_mode & 0o077) == 0, oct(path.stat().st_mode)
    from_lines = [l for l in text.split(b"\n") if l.startswith(b"From ")]
    assert len(from_lines) == 2, from_lines
    asctime = rb"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}"
    # The two deliveries may land in either order.
    alice = [l for l in from_lines
             if re.fullmatch(rb"From alice@example\.test +" + asctime, l)]
    daemon = [l for l in from_lines
              if re.fullmatch(rb"From MAILER-DAEMON +" + asctime, l)]
    assert len(alice) == 1 and len(daemon) == 1, from_lines
    assert b"\n>From the start of a line\n" in text
    assert b"\n>>From already quoted\n" in text
    assert b"\nFromage is not quoted\n" in text
    assert text.endswith(b"\n\n")
    one = [m for m in msgs if b"mbox-one" in m][0]
    assert header_values(one, "Return-Path") == ["<alice@example.test>"]
    assert header_values(one, "Delivered-To") == ["demo@example.test"]


# ---------------------------------------------------------------- BDAT

def test_bdat_single_chunk(mserver):
    raw = mserver.raw()
    ehlo(raw)
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<demo@example.test>")[0] == 250
    data = (b"Subject: bdat-one-7\r\n\r\nline\r\n.\r\n..two dots\r\n"
            b"after the dot line\r\n")
    raw.send(b"BDAT %d LAST\r\n" % len(data) + data)
    code, lines = raw.reply()
    assert code == 250, lines
    m = re.fullmatch(r"2\.0\.0 Ok: queued as (\S+)", lines[0])
    assert m, lines
    msg = mserver.wait_token("demo", "bdat-one-7")[0]
    # no dot handling in BDAT; CRLF stored as LF
    assert body_of(msg) == b"line\n.\n..two dots\nafter the dot line\n"
    assert ("id " + m.group(1)) in header_values(msg, "Received")[0]


def test_bdat_chunks_and_split_crlf(mserver):
    raw = mserver.raw()
    ehlo(raw)
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<demo@example.test>")[0] == 250
    c1 = b"Subject: bdat-two-8\r\n\r\nfirst chunk ends in CR\r"
    c2 = b"\nsecond chunk\r\n"
    c3 = b"third\r\n"
    raw.send(b"BDAT %d\r\n" % len(c1) + c1)
    assert raw.reply() == (250, ["2.0.0 Ok: %d octets" % len(c1)])
    raw.send(b"BDAT %d\r\n" % len(c2) + c2)
    assert raw.reply() == (250, ["2.0.0 Ok: %d octets" % len(c2)])
    # DATA is not allowed inside a BDAT transaction
    code, lines = raw.cmd("DATA")
    assert code == 503, lines
    raw.send(b"BDAT %d LAST\r\n" % len(c3) + c3)
    code, lines = raw.reply()
    assert code == 250 and "queued as" in lines[0], lines
    assert raw.cmd("QUIT")[0] == 221
    msg = mserver.wait_token("demo", "bdat-two-8")[0]
    assert body_of(msg) == b"first chunk ends in CR\nsecond chunk\nthird\n"


def test_bdat_zero_last(mserver):
    raw = mserver.raw()
    ehlo(raw)
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250
    assert raw.cmd("RCPT TO:<demo@example.test>")[0] == 250
    c1 = b"Subject: bdat-three-9\r\n\r\nbody\r\n"
    raw.send(b"BDAT %d\r\n" % len(c1) + c1)
    assert raw.reply()[0] == 250
    raw.send(b"BDAT 0 LAST\r\n")
    code, lines = raw.reply()
    assert code == 250 and "queued as" in lines[0], lines
    msg = mserver.wait_token("demo", "bdat-three-9")[0]
    assert body_of(msg) == b"body\n"


# ------------------------------------------------------------------- DSN

def test_dsn_parameters_recorded_in_queue(make_server):
    srv = make_server(conf=REMOTE_DEFERRED)
    qid = srv.send("alice@example.test", "someone@remote.example",
                   make_msg("dsn-queue-10"),
                   mail_options=["RET=HDRS", "ENVID=envid-test-123"],
                   rcpt_options=["NOTIFY=SUCCESS,DELAY",
                                 "ORCPT=rfc822;orig@example.org"])
    # the remote side is down: the message stays in the queue, deferred
    srv.wait_deferred(qid)
    q = srv.mailq()
    assert q.returncode == 0
    assert re.search(r"^%s\s" % qid, q.out, re.M), q.out
    assert "someone@remote.example" in q.out
    show = srv.postern("queue", "show", qid)
    assert show.returncode == 0, show.err
    for word in ("envid-test-123", "HDRS", "SUCCESS", "DELAY",
                 "orig@example.org", "someone@remote.example",
                 "alice@example.test", "dsn-queue-10"):
        assert word in show.out, (word, show.out)


def test_dsn_notify_success(mserver):
    """NOTIFY=SUCCESS: the sender gets a 'delivered' report."""
    envid = "success-envid-11"
    mserver.send("alice@example.test", "demo@example.test",
                 make_msg("dsn-success-11"),
                 mail_options=["RET=HDRS", "ENVID=" + envid],
                 rcpt_options=["NOTIFY=SUCCESS",
                               "ORCPT=rfc822;demo@example.test"])
    mserver.wait_token("demo", "dsn-success-11")
    report = mserver.wait_token("alice", envid)[0]
    m = parse(report)
    assert m.get_content_type() == "multipart/report"
    assert m.get_param("report-type") == "delivery-status"
    assert report.startswith(b"Return-Path: <>\n")
    text = report.decode("utf-8", "replace")
    assert re.search(r"^Original-Envelope-Id: %s$" % envid, text, re.M)
    assert re.search(r"^Action: delivered", text, re.M), text
    assert re.search(r"^Status: 2\.\d+\.\d+", text, re.M), text
    assert re.search(r"^Final-Recipient: rfc822; ?demo@example\.test", text,
                     re.M | re.I), text


# -------------------------------------------------------------- SMTPUTF8

def test_smtputf8_sender(mserver):
    raw = mserver.raw()
    ehlo(raw)
    sender = "j\u00f6s\u00e9@ex\u00e4mple.test"
    code, lines = raw.cmd("MAIL FROM:<%s>" % sender)
    assert code == 553 and lines[0].startswith("5.6.7"), lines
    assert raw.cmd("MAIL FROM:<%s> SMTPUTF8" % sender)[0] == 250
    assert raw.cmd("RCPT TO:<demo@example.test>")[0] == 250
    raw.expect(354, "DATA\r\n")
    raw.send("Subject: utf8-sender-12 \u00fcml\u00e4ut\r\n\r\nbody\r\n.\r\n")
    assert raw.reply()[0] == 250
    msg = mserver.wait_token("demo", "utf8-sender-12")[0]
    assert msg.startswith(("Return-Path: <%s>\n" % sender).encode()), msg[:80]
    assert "Subject: utf8-sender-12 \u00fcml\u00e4ut".encode() in msg
    received = header_values(msg, "Received")[0]
    assert "UTF8SMTP" in received, received


def test_smtputf8_recipient(make_server):
    rcpt = "j\u00f6s\u00e9"
    srv = make_server(aliases="%s: demo\n" % rcpt)
    raw = srv.raw()
    ehlo(raw)
    assert raw.cmd("MAIL FROM:<alice@example.test> SMTPUTF8")[0] == 250
    code, lines = raw.cmd("RCPT TO:<%s@example.test>" % rcpt)
    assert code == 250, lines
    raw.expect(354, "DATA\r\n")
    raw.send("Subject: utf8-rcpt-13\r\n\r\nbody\r\n.\r\n")
    assert raw.reply()[0] == 250
    srv.wait_token("demo", "utf8-rcpt-13")


# ------------------------------------------------------- session limits

def test_hard_error_limit(make_server):
    srv = make_server(conf="smtpd_hard_error_limit = 4\n"
                           "smtpd_soft_error_limit = 100\n"
                           "smtpd_error_sleep_time = 0s\n")
    raw = srv.raw()
    ehlo(raw)
    replies = []
    try:
        for i in range(6):
            code, lines = raw.cmd("BOGUS%d" % i)
            replies.append(code)
            if code != 421:
                # a 421 may follow the last error reply unasked
                readable = select.select([raw.sock], [], [], 0.3)[0]
                if readable and not raw.buf:
                    code, lines = raw.reply()
                    replies.append(code)
            if code == 421:
                assert lines[0] == ("4.7.0 %s Error: too many errors" %
                                    HOSTNAME), lines
                break
    except (EOFError, ConnectionResetError):
        pass
    assert 421 in replies, replies
    assert replies.count(502) in (3, 4), replies
    assert raw.at_eof()


def test_idle_timeout(make_server):
    srv = make_server(conf="smtpd_timeout = 2s\n")
    raw = srv.raw()
    ehlo(raw)
    code, lines = raw.reply()   # nothing sent: the server times out
    assert code == 421
    assert lines[0] == "4.4.2 %s Error: timeout exceeded" % HOSTNAME
    assert raw.at_eof()


def test_duplicate_recipient_delivered_once(mserver):
    """The same recipient twice in one transaction: one copy (Postfix's
    cleanup drops duplicate recipients)."""
    with mserver.smtp() as s:
        s.ehlo()
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.rcpt("bob@Example.Test")[0] == 250
        code, text = s.data(crlf(make_msg("duplicate-rcpt-15")))
        assert code == 250
    mserver.wait_token("bob", "duplicate-rcpt-15")
    mserver.wait_queue_empty(subdirs=("tmp", "incoming"))
    assert len(mserver.with_token("bob", "duplicate-rcpt-15")) == 1


# ---------------------------------------------------- listeners, options

def test_bare_port_listens_on_loopback_v4_and_v6(make_server):
    """smtp_listen = PORT with inet_interfaces = loopback-only."""
    srv = make_server(start=False)
    srv.write_config("smtp_listen = %d\n" % srv.smtp_port)
    srv.start()
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with smtplib.SMTP("::1", srv.smtp_port, timeout=20,
                      local_hostname="client.example.test") as s:
        assert s.ehlo()[0] == 250
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("demo@example.test")[0] == 250
        assert s.data(crlf(make_msg("over-ipv6")))[0] == 250
    raw = srv.wait_token("demo", "over-ipv6")[0]
    assert "[IPv6:::1]" in header_values(raw, "Received")[0]


def test_helo_required_and_smtputf8_off(make_server):
    srv = make_server(conf="smtpd_helo_required = yes\n"
                           "smtputf8_enable = no\n")
    raw = srv.raw()
    raw.expect(220)
    code, lines = raw.cmd("MAIL FROM:<alice@example.test>")
    assert code == 503
    assert lines[0] == "5.5.1 Error: send HELO/EHLO first"
    lines = raw.expect(250, "EHLO client.example.test\r\n")
    assert "SMTPUTF8" not in lines and "PIPELINING" in lines
    code, lines = raw.cmd("MAIL FROM:<alice@example.test> SMTPUTF8")
    assert 500 <= code < 600, (code, lines)
    assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 250


# ---------------------------------------------------- delivery at accept

def queue_records(path):
    """[(type, data)] of a queue file (format in smtp/queue_file.h)."""
    raw = path.read_bytes()
    out, pos = [], 0
    while pos + 5 <= len(raw):
        n = int.from_bytes(raw[pos + 1:pos + 5], "big")
        out.append((chr(raw[pos]), raw[pos + 5:pos + 5 + n]))
        pos += 5 + n
    return out


def test_delivery_at_accept_local_user(make_server):
    """local_delivery_at_accept (the default, set here all the same): the
    copy is in new/ when 250 arrives, and the message never entered the
    queue."""
    srv = make_server(conf="local_delivery_at_accept = yes\n")
    qid = srv.send("alice@example.test", "demo@example.test",
                   make_msg("at-accept-plain-20"))
    # no waiting: it is there as 250 is read
    files = srv.maildir_files("demo")
    assert len(files) == 1, files
    assert files[0].parent.name == "new"
    assert ".Q%sR0." % qid in files[0].name, files[0].name
    assert b"at-accept-plain-20" in files[0].read_bytes()
    assert srv.queue_files() == []
    assert srv.mailq().out == "Mail queue is empty\n"
    text = "\n".join(l for l in srv.log().splitlines() if qid in l)
    assert re.search(r"smtpd\[\d+\]: %s: from=<alice@example\.test>, "
                     r"size=\d+, nrcpt=1 \(queue active\)" % qid, text), text
    assert re.search(r"%s: to=<demo@example\.test>, relay=local, .*"
                     r"status=sent \(delivered to maildir\)" % qid, text), text
    assert re.search(r"smtpd\[\d+\]: %s: removed" % qid, text), text
    # qmgr never saw it
    assert not re.search(r"qmgr\[\d+\]: %s:" % qid, text), text


@pytest.mark.parametrize("at_accept", ["yes", "no"])
def test_delivery_at_accept_local_and_remote(make_server, at_accept):
    """A local user plus a remote recipient: the local copy is delivered
    (at accept: already at 250), the remote one stays deferred in the
    queue; the user sees the same with local_delivery_at_accept = no."""
    srv = make_server(conf="local_delivery_at_accept = %s\n" % at_accept +
                      REMOTE_DEFERRED)
    subject = "at-accept-mixed-21-" + at_accept
    qid = srv.send("alice@example.test",
                   ["demo@example.test", "far@remote.example"],
                   make_msg(subject))
    if at_accept == "yes":
        files = srv.maildir_files("demo")
        assert len(files) == 1 and files[0].parent.name == "new", files
        # committed with the local copy marked done
        path = srv.spool / "incoming" / qid
        if not path.exists():
            path = srv.spool / "deferred" / qid
        recs = queue_records(path)
        types = [t for t, _ in recs]
        assert types.index("E") < types.index("D"), types
        assert ("D", b"0") in recs and ("D", b"1") not in recs, recs
    srv.wait_token("demo", subject)
    srv.wait_deferred(qid)
    srv.wait_log(r"%s: to=<far@remote\.example>.*status=deferred" % qid)
    out = srv.mailq().out
    assert re.search(r"^%s\s" % qid, out, re.M), out
    assert "far@remote.example" in out
    assert "demo@example.test" not in out
    assert srv.queue_files(("tmp", "incoming")) == []
    # exactly one copy, also after qmgr took the message
    assert len(srv.with_token("demo", subject)) == 1
    msg = srv.with_token("demo", subject)[0]
    assert header_values(msg, "Delivered-To") == ["demo@example.test"]
    sent = srv.log_lines(r"%s: to=<demo@example\.test>.*status=sent" % qid)
    assert len(sent) == 1, sent
    # at accept, local logs the delivery; otherwise qmgr does
    who = "local" if at_accept == "yes" else "qmgr"
    assert re.search(r"postern/%s\[\d+\]: " % who, sent[0]), sent
    assert not srv.log_lines(r"%s: removed" % qid)


def test_connection_count_limit_per_client(make_server):
    """smtpd_client_connection_count_limit: a client outside $mynetworks
    gets 421 4.7.0 for the connection over the limit; closing one lets
    the next one in; $mynetworks clients are exempt."""
    srv = make_server(mynetworks="192.0.2.0/24",
                      conf="smtpd_client_connection_count_limit = 2\n")
    held = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", srv.smtp_port), 10)
            held.append(s)
            assert s.makefile("rb").readline().startswith(b"220 ")
        extra = socket.create_connection(("127.0.0.1", srv.smtp_port), 10)
        line = extra.makefile("rb").readline()
        extra.close()
        assert line.startswith(b"421 4.7.0 "), line
        assert b"too many connections from 127.0.0.1" in line, line
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:
            s = socket.create_connection(("127.0.0.1", srv.smtp_port), 10)
            line = s.makefile("rb").readline()
            if line.startswith(b"220 ") or time.monotonic() > deadline:
                break
            s.close()
            time.sleep(0.1)
        held.append(s)
        assert line.startswith(b"220 "), line
    finally:
        for s in held:
            s.close()
    assert "Connection concurrency limit exceeded" in srv.log()
    exempt = make_server(conf="smtpd_client_connection_count_limit = 1\n")
    a = socket.create_connection(("127.0.0.1", exempt.smtp_port), 10)
    b = socket.create_connection(("127.0.0.1", exempt.smtp_port), 10)
    try:
        assert a.makefile("rb").readline().startswith(b"220 ")
        assert b.makefile("rb").readline().startswith(b"220 ")
    finally:
        a.close()
        b.close()
