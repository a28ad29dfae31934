"""
Local delivery as users see it: aliases (lists, :include:, /file,
|command), .forward, postmaster, loop detection, and bounces (RFC 3464)
for failures after the message was accepted.
"""
import contextlib
import fcntl
import os
import re
import time
from pathlib import Path

from conftest import (HOSTNAME, crlf, header_values, make_msg, parse,
                      wait_for)

CMD_SCRIPT = """#!/bin/sh
# records how it was run: environment, uid, and the message on stdin
n="%(out)s/run.$$"
{
	printf 'RECIPIENT=%%s\\n' "$RECIPIENT"
	printf 'SENDER=%%s\\n' "$SENDER"
	printf 'LOCAL=%%s\\n' "$LOCAL"
	printf 'EXTENSION=%%s\\n' "$EXTENSION"
	printf 'HOME=%%s\\n' "$HOME"
	printf 'UID=%%s\\n' "$(id -u)"
} > "$n.tmp"
cat > "$n.msg"
mv "$n.tmp" "$n.env"
exit 0
"""

FAIL_SCRIPT = """#!/bin/sh
cat >/dev/null
echo "sorry, this mailbox is closed"
exit 1
"""


def setup_command(srv):
    """An output directory and a delivery command script; returns
    (script path, output dir)."""
    out = srv.mkdir(srv.dir / "cmdout", mode=0o777)
    script = srv.write(srv.dir / "cmd.sh", CMD_SCRIPT % {"out": out},
                       mode=0o755)
    return script, out


def command_runs(out, n=1):
    """Wait for n finished runs of cmd.sh; [(env dict, stdin bytes)]."""
    def runs():
        envs = sorted(out.glob("run.*.env"))
        return envs if len(envs) >= n else None
    envs = wait_for(runs)
    assert envs, "command did not run %d times: %s" % (
        n, sorted(p.name for p in out.iterdir()))
    result = []
    for e in envs:
        env = dict(l.split("=", 1) for l in e.read_text().splitlines())
        result.append((env, e.with_suffix(".msg").read_bytes()))
    return result


def dsn_text(report):
    return report.decode("utf-8", "replace")


def assert_bounce(report, rcpt, status, subject):
    """report is an RFC 3464 non-delivery report for rcpt (a regular
    expression)."""
    m = parse(report)
    assert report.startswith(b"Return-Path: <>\n"), report[:200]
    assert m.get_content_type() == "multipart/report", m.get_content_type()
    assert m.get_param("report-type") == "delivery-status"
    assert "MAILER-DAEMON@" + HOSTNAME in m["From"]
    assert m["Subject"] == "Undelivered Mail Returned to Sender"
    assert (m["Auto-Submitted"] or "").startswith("auto-replied"), \
        m["Auto-Submitted"]
    types = [p.get_content_type() for p in m.walk()]
    assert "message/delivery-status" in types, types
    assert ("message/rfc822" in types or
            "text/rfc822-headers" in types), types
    text = dsn_text(report)
    assert re.search(r"^Reporting-MTA: dns; ?%s" % re.escape(HOSTNAME), text,
                     re.M | re.I), text
    assert re.search(r"^Final-Recipient: rfc822; ?(%s)$" % rcpt,
                     text, re.M | re.I), text
    assert re.search(r"^Action: failed$", text, re.M), text
    assert re.search(r"^Status: %s$" % re.escape(status), text, re.M), text
    assert subject in text
    return text


# ---------------------------------------------------------------- aliases

def test_alias_list(make_server):
    srv = make_server(aliases="team: alice, bob\n")
    srv.send("carol@example.test", "team@example.test",
             make_msg("to-the-team"))
    srv.wait_token("alice", "to-the-team")
    srv.wait_token("bob", "to-the-team")
    srv.wait_queue_empty()
    assert len(srv.messages("alice")) == 1
    assert len(srv.messages("bob")) == 1
    assert srv.messages("demo") == []
    assert srv.messages("carol") == []


def test_alias_include(make_server):
    srv = make_server(start=False)
    inc = srv.write(srv.dir / "staff.list", "alice\n# a comment\ncarol\n")
    srv.set_aliases("staff: :include:%s\n" % inc)
    srv.start()
    srv.send("bob@example.test", "staff@example.test", make_msg("staff-news"))
    srv.wait_token("alice", "staff-news")
    srv.wait_token("carol", "staff-news")
    srv.wait_queue_empty()
    assert len(srv.messages("alice")) == 1
    assert len(srv.messages("carol")) == 1
    assert srv.messages("bob") == []


def test_alias_to_file(make_server):
    srv = make_server(start=False)
    files = srv.mkdir(srv.dir / "files")
    target = files / "archive.mbox"
    srv.set_aliases("archive: %s\n" % target)
    srv.start()
    srv.send("alice@example.test", "archive@example.test",
             make_msg("archived-one", "first body\n"))
    srv.send("alice@example.test", "archive@example.test",
             make_msg("archived-two", "second body\n"))
    assert wait_for(lambda: target.exists() and
                    b"archived-two" in target.read_bytes()), srv.log_tail()
    srv.wait_queue_empty()
    data = target.read_bytes()
    assert data.startswith(b"From alice@example.test ")
    assert data.count(b"\nFrom alice@example.test ") == 1
    # Deliveries run concurrently, so either order is right; each copy
    # must be whole: its own From_ line, subject and body together.
    parts = re.split(rb"(?m)^From alice@example\.test ", data)[1:]
    assert len(parts) == 2, parts
    for subject, body in ((b"archived-one", b"first body"),
                          (b"archived-two", b"second body")):
        hits = [p for p in parts if subject in p]
        assert len(hits) == 1 and body in hits[0], parts
    srv.wait_log(r": to=<archive@example\.test>.*status=sent \(delivered to "
                 r"file: %s\)" % re.escape(str(target)))


def test_alias_to_command(make_server):
    srv = make_server(start=False)
    script, out = setup_command(srv)
    srv.set_aliases('tocmd: "|%s"\n' % script)
    srv.start()
    srv.send("alice@example.test", "tocmd@example.test",
             make_msg("for-the-command", "command body\n"))
    (env, stdin), = command_runs(out)
    assert env["RECIPIENT"] == "tocmd@example.test"
    assert env["SENDER"] == "alice@example.test"
    assert env["LOCAL"] == "tocmd"
    assert b"Subject: for-the-command" in stdin
    assert stdin.endswith(b"command body\n")
    # From_ line, Return-Path, Delivered-To, then the message
    assert stdin.startswith(b"From alice@example.test "), stdin[:100]
    assert b"\nReturn-Path: <alice@example.test>\n" in stdin
    assert b"\nDelivered-To: tocmd@example.test\n" in stdin
    srv.wait_queue_empty()
    srv.wait_log(r": to=<tocmd@example\.test>.*status=sent")


def test_command_failure_bounces(make_server):
    srv = make_server(start=False)
    fail = srv.write(srv.dir / "fail.sh", FAIL_SCRIPT, mode=0o755)
    srv.set_aliases('closed: "|%s"\n' % fail)
    srv.start()
    srv.send("alice@example.test", "closed@example.test",
             make_msg("to-a-closed-box"))
    report = srv.wait_token("alice", "to-a-closed-box")[0]
    text = assert_bounce(report, r"closed@example\.test", "5.3.0",
                         "to-a-closed-box")
    assert "sorry, this mailbox is closed" in text


def run_metachar_recipients(make_server, rcpts):
    """Deliver to carol+EXTENSION addresses whose extension holds shell
    code; carol's .forward pipes to cmd.sh.  Returns the command runs;
    asserts that none of the shell code ran."""
    srv = make_server(conf="recipient_delimiter = +\n")
    script, out = setup_command(srv)
    home = srv.make_home("carol")
    srv.write(home / ".forward", '"|%s"\n' % script)
    rcpts = [r.replace("DIR", str(srv.dir)) for r in rcpts]
    raw = srv.raw()
    raw.expect(220)
    raw.expect(250, "EHLO client.example.test\r\n")
    for r in rcpts:
        raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
        code, lines = raw.cmd("RCPT TO:<%s>" % r)
        assert code == 250, (r, code, lines)
        raw.expect(354, "DATA\r\n")
        raw.expect(250, "Subject: meta\r\n\r\nbody\r\n.\r\n")
    raw.cmd("QUIT")
    runs = command_runs(out, len(rcpts))
    srv.wait_queue_empty()
    assert len(runs) == len(rcpts)
    for i in range(len(rcpts)):
        marker = "pwned%d" % i
        hits = list(srv.dir.rglob(marker))
        hits += [p for p in (Path("/", marker), Path("/tmp", marker))
                 if p.exists()]
        assert hits == [], hits
    return sorted(env["RECIPIENT"] for env, _ in runs), \
        sorted(env["EXTENSION"] for env, _ in runs)


def test_addresses_never_reach_a_shell(make_server):
    """Shell metacharacters in the recipient reach the command only
    through the environment; nothing in them is executed."""
    rcpts = ["carol+`touch${IFS}pwned0`@example.test",
             "carol+|touch${IFS}pwned1|@example.test",
             "carol+&touch${IFS}pwned2&@example.test"]
    seen, ext = run_metachar_recipients(make_server, rcpts)
    assert seen == sorted(rcpts)
    assert sorted(ext) == sorted(r.split("+", 1)[1].split("@")[0]
                                 for r in rcpts)


def test_quoted_addresses_never_reach_a_shell(make_server):
    """The same with quoted local parts (RFC 5321 4.1.2), which may hold
    spaces, ';', '(' and quotes."""
    rcpts = ['"carol+$(touch pwned0)"@example.test',
             '"carol+x;touch DIR/pwned1;#"@example.test',
             '"carol+x\\";touch DIR/pwned2;\\""@example.test']
    seen, ext = run_metachar_recipients(make_server, rcpts)
    for i in range(len(rcpts)):
        assert any("pwned%d" % i in r for r in seen), seen
    assert any(e == "$(touch pwned0)" for e in ext), ext


# --------------------------------------------------------------- .forward

def test_forward_to_another_user(server):
    home = server.make_home("carol")
    server.write(home / ".forward", "alice\n")
    server.send("bob@example.test", "carol@example.test",
                make_msg("forwarded-away"))
    server.wait_token("alice", "forwarded-away")
    server.wait_queue_empty()
    assert server.messages("carol") == []
    assert len(server.messages("alice")) == 1


def test_forward_keeping_a_copy(server):
    home = server.make_home("bob")
    server.write(home / ".forward", "\\bob, alice@example.test\n")
    server.send("carol@example.test", "bob@example.test",
                make_msg("copy-kept"))
    server.wait_token("bob", "copy-kept")
    server.wait_token("alice", "copy-kept")
    server.wait_queue_empty()
    assert len(server.messages("bob")) == 1
    assert len(server.messages("alice")) == 1


def test_group_writable_forward_ignored(server):
    home = server.make_home("carol")
    server.write(home / ".forward", "alice\n", mode=0o666)
    server.send("bob@example.test", "carol@example.test",
                make_msg("unsafe-forward"))
    server.wait_token("carol", "unsafe-forward")
    server.wait_queue_empty()
    assert server.messages("alice") == []


# ------------------------------------------------------------- postmaster

def test_postmaster_alias(server):
    for i, rcpt in enumerate(["postmaster", "Postmaster@example.test",
                              "POSTMASTER@mail.example.test"]):
        server.send("alice@example.test", rcpt, make_msg("pm-%d" % i))
    for i in range(3):
        server.wait_token("demo", "pm-%d" % i)


def test_postmaster_accepted_without_alias(make_server):
    srv = make_server(start=False)
    srv.set_aliases("", add_base=False)
    srv.start()
    with srv.smtp() as s:
        s.ehlo()
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("postmaster@example.test")[0] == 250
        assert s.rcpt("postmaster")[0] == 250
        assert s.rcpt("nosuchuser@example.test")[0] == 550


# ---------------------------------------------------------- loops, bounces

def test_delivered_to_loop_bounces(server):
    msg = make_msg("looping-message",
                   extra=["Delivered-To: demo@example.test"])
    server.send("alice@example.test", "demo@example.test", msg)
    report = server.wait_token("alice", "looping-message")[0]
    text = assert_bounce(report, r"demo@example\.test", "5.4.6",
                         "looping-message")
    assert "mail forwarding loop for demo@example.test" in text
    server.wait_queue_empty()
    assert server.messages("demo") == []


def test_too_many_hops_rejected(server):
    """More Received headers than hopcount_limit: a loop.  Refused while
    the client is still there (like Postfix's cleanup), or bounced."""
    hops = ["Received: from hop%d.example.org by hop%d.example.org; "
            "Mon, 2 Jan 2006 15:04:05 -0700" % (i, i + 1) for i in range(60)]
    with server.smtp() as s:
        s.ehlo()
        assert s.mail("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        code, text = s.data(crlf(make_msg("many-hops", extra=hops)))
    if code == 250:
        report = server.wait_token("alice", "many-hops")[0]
        assert_bounce(report, r"bob@example\.test", "5.4.6", "many-hops")
    else:
        assert code == 554, (code, text)
        assert text.startswith(b"5.4.0"), text
        assert b"too many hops" in text
    server.wait_queue_empty()
    assert server.messages("bob") == []


def test_unknown_alias_target_bounces(make_server):
    srv = make_server(aliases="ghost: nosuchuser\n")
    srv.send("alice@example.test", "ghost@example.test",
             make_msg("to-a-ghost"))
    report = srv.wait_token("alice", "to-a-ghost")[0]
    assert_bounce(report, r"(ghost|nosuchuser)@example\.test", "5.1.1",
                  "to-a-ghost")
    srv.wait_log(r"to=<nosuchuser@example\.test>.*status=bounced|"
                 r"to=<ghost@example\.test>.*status=bounced")


def test_notify_never_suppresses_bounce(make_server):
    srv = make_server(aliases="ghost: nosuchuser\n")
    qid = srv.send("alice@example.test", "ghost@example.test",
                   make_msg("never-tell"), rcpt_options=["NOTIFY=NEVER"])
    srv.wait_log(r"%s: .*status=bounced" % qid)
    srv.wait_queue_empty()
    # a later message proves delivery to alice works and comes after
    srv.send("bob@example.test", "alice@example.test", make_msg("later-one"))
    srv.wait_token("alice", "later-one")
    srv.wait_queue_empty()
    assert srv.with_token("alice", "never-tell") == []


def test_mailbox_full_bounces(make_server):
    srv = make_server(mail="mbox", conf="message_size_limit = 20000\n"
                                        "mailbox_size_limit = 20000\n")
    body = ("y" * 70 + "\n") * 170          # about 12 kB
    srv.send("alice@example.test", "demo@example.test",
             make_msg("fits-in-box", body))
    srv.wait_token("demo", "fits-in-box")
    srv.send("alice@example.test", "demo@example.test",
             make_msg("box-overflows", body))
    report = srv.wait_token("alice", "box-overflows")[0]
    assert_bounce(report, r"demo@example\.test", "5.2.2", "box-overflows")
    srv.wait_queue_empty()
    assert len(srv.messages("demo")) == 1
    srv.wait_log(r"to=<demo@example\.test>.*dsn=5\.2\.2.*status=bounced")


def test_bounce_honours_ret_envid_orcpt(make_server):
    srv = make_server(aliases="ghost: nosuchuser\n")
    srv.send("alice@example.test", "ghost@example.test",
             make_msg("headers-only", "SECRET-BODY-TEXT\n"),
             mail_options=["RET=HDRS", "ENVID=env-42"],
             rcpt_options=["NOTIFY=FAILURE",
                           "ORCPT=rfc822;orig-ghost@example.test"])
    report = srv.wait_token("alice", "headers-only")[0]
    text = assert_bounce(report, r"(ghost|nosuchuser)@example\.test",
                         "5.1.1", "headers-only")
    types = [p.get_content_type() for p in parse(report).walk()]
    assert "text/rfc822-headers" in types, types
    assert "message/rfc822" not in types, types
    assert "SECRET-BODY-TEXT" not in text
    assert re.search(r"^Original-Envelope-Id: env-42$", text, re.M), text
    assert re.search(r"^Original-Recipient: rfc822; ?"
                     r"orig-ghost@example\.test$", text, re.M | re.I), text


def test_bounce_returns_full_message_by_default(make_server):
    srv = make_server(aliases="ghost: nosuchuser\n")
    srv.send("alice@example.test", "ghost@example.test",
             make_msg("whole-message", "THE-BODY-TEXT\n"))
    report = srv.wait_token("alice", "whole-message")[0]
    types = [p.get_content_type() for p in parse(report).walk()]
    assert "message/rfc822" in types, types
    assert b"THE-BODY-TEXT" in report


def test_no_bounce_for_null_sender(make_server):
    srv = make_server(aliases="ghost: nosuchuser\n")
    qid = srv.send("<>", "ghost@example.test", make_msg("bounce-of-bounce"))
    srv.wait_log(r"%s: .*status=bounced" % qid)
    srv.wait_queue_empty()
    # a later message to the postmaster shows that nothing came before it
    srv.send("bob@example.test", "postmaster", make_msg("pm-later"))
    srv.wait_token("demo", "pm-later")
    srv.wait_queue_empty()
    for user in ("demo", "alice", "bob", "carol"):
        assert srv.with_token(user, "bounce-of-bounce") == [], user


def test_recipient_delimiter(make_server):
    srv = make_server(conf="recipient_delimiter = +\n")
    srv.send("alice@example.test", "demo+lists@example.test",
             make_msg("with-extension"))
    raw = srv.wait_token("demo", "with-extension")[0]
    assert header_values(raw, "Delivered-To") == ["demo+lists@example.test"]
    with srv.smtp() as s:
        s.ehlo()
        s.mail("alice@example.test")
        assert s.rcpt("nosuchuser+lists@example.test")[0] == 550


def test_expired_mail_bounces(make_server):
    """maximal_queue_lifetime = 0: one attempt, then back to the sender."""
    srv = make_server(conf="maximal_queue_lifetime = 0\n")
    qid = srv.send("alice@example.test", "far@remote.example",
                   make_msg("never-arrives"))
    report = srv.wait_token("alice", "never-arrives")[0]
    m = parse(report)
    assert m.get_content_type() == "multipart/report"
    text = report.decode("utf-8", "replace")
    assert re.search(r"^Final-Recipient: rfc822; ?far@remote\.example$",
                     text, re.M | re.I), text
    assert re.search(r"^Action: failed$", text, re.M), text
    srv.wait_queue_empty()
    assert qid not in srv.mailq().out


def _mbox_locked_delivery(srv, lock):
    """Deliver to demo's mbox while `lock` (a context manager) holds it;
    nothing may be written until it is released."""
    path = srv.mbox_path("demo")
    srv.write(path, b"", mode=0o600)
    with lock(path):
        srv.send("alice@example.test", "demo@example.test",
                 make_msg("waited-for-lock"))
        time.sleep(1.5)
        assert path.read_bytes() == b""
    # local either waited for the lock or deferred: retry now
    srv.postern("queue", "flush")
    srv.wait_token("demo", "waited-for-lock")
    srv.wait_queue_empty()
    assert len(srv.messages("demo")) == 1


def test_mbox_respects_fcntl_lock(make_server):
    srv = make_server(mail="mbox")

    @contextlib.contextmanager
    def fcntl_lock(path):
        with open(path, "r+b") as f:
            fcntl.lockf(f, fcntl.LOCK_EX)
            yield
            fcntl.lockf(f, fcntl.LOCK_UN)
    _mbox_locked_delivery(srv, fcntl_lock)


def test_mbox_respects_dotlock(make_server):
    srv = make_server(mail="mbox")

    @contextlib.contextmanager
    def dotlock(path):
        lock = srv.write(str(path) + ".lock", b"", mode=0o600)
        try:
            yield
        finally:
            os.unlink(lock)
    _mbox_locked_delivery(srv, dotlock)
