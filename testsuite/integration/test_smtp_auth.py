"""
SMTP AUTH in smtpd (RFC 4954) and the submission policy: what EHLO
offers where, logins with swaks, curl and smtplib (PLAIN, LOGIN,
CRAM-MD5), the replies to every kind of failure, relaying for
authenticated clients, 530 on submission without AUTH, the Received
header (RFC 3848 ESMTPA / ESMTPSA) and the log lines admins and fail2ban
read, plaintext passwords refused before STARTTLS, and the sender login
checks of smtpd_sender_login_maps.
"""
import base64
import os
import re
import signal
import smtplib
import ssl
import subprocess

import pytest

from conftest import (HOSTNAME, PASSWORD, Server, make_msg, proc_alive,
                      wait_for)

# No client is trusted by address: relaying needs AUTH.
MYNETWORKS = "192.0.2.0/24"
AUTH_CONF = """\
smtpd_sasl_auth_enable = yes
auth_mechanisms = plain login cram-md5
broken_sasl_auth_clients = yes
# Tests fail logins on purpose, all from 127.0.0.1.
auth_failure_delay = 0
smtpd_error_sleep_time = 0
"""
# A user whose stored secret allows CRAM-MD5.
CRAM_USER = "cram"
REMOTE = "friend@remote.example"
# fail2ban's postfix-sasl filter, which admins point at our log.
F2B_POSTFIX_SASL = re.compile(
    r"warning: [-._\w]+\[(?P<host>[^\]]+)\]: SASL (?i:LOGIN|PLAIN|"
    r"(?:CRAM|DIGEST)-MD5) authentication failed(:[ A-Za-z0-9+/:]*={0,2})?"
    r"\s*$")


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def plain(user, password):
    return base64.b64encode(
        ("\0%s\0%s" % (user, password)).encode()).decode()


def b64(text):
    return base64.b64encode(text.encode()).decode()


def add_cram_user(srv):
    r = srv.postern("user", "add", CRAM_USER, "-p", PASSWORD, "-s",
                    "CRAM-MD5")
    if r.returncode != 0:
        # An older postern without -s: write the line ourselves.
        with open(srv.dir / "users", "a") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (CRAM_USER, PASSWORD))


@pytest.fixture(scope="module")
def srv(request):
    s = Server("msmtpauth", conf=AUTH_CONF, mynetworks=MYNETWORKS,
               smtps=True)
    add_cram_user(s)
    s.start()
    yield s
    s.close(failed=getattr(request.module, "postern_failed", False))


def ehlo_lines(raw):
    raw.expect(220)
    return raw.expect(250, "EHLO client.example.test\r\n")


def auth_lines(lines):
    return [l for l in lines if l.upper().startswith("AUTH")]


def mechs_of(lines):
    for l in lines:
        if l.upper().startswith("AUTH "):
            return set(l.split()[1:])
    return set()


def swaks(srv, port, *args, user="alice", password=PASSWORD,
          sender="alice@example.test", to="bob@example.test", subject=None):
    argv = ["swaks", "--server", "127.0.0.1:%d" % port,
            "--helo", "client.example.test", "--from", sender, "--to", to,
            "--timeout", "20"]
    if user is not None:
        argv += ["--auth-user", user, "--auth-password", password]
    if subject:
        argv += ["--header", "Subject: %s" % subject]
    argv += list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


# ------------------------------------------------------------ EHLO

def test_ehlo_offers_auth_on_every_port(srv):
    for port in (srv.smtp_port, srv.submission_port):
        raw = srv.raw(port)
        try:
            lines = ehlo_lines(raw)
        finally:
            raw.close()
        assert mechs_of(lines) == {"PLAIN", "LOGIN", "CRAM-MD5"}, lines
        # broken_sasl_auth_clients = yes adds the old "AUTH=" form.
        auth = [l for l in lines if l.startswith("AUTH ")][0]
        assert "AUTH=" + auth[5:] in lines, lines
    with smtplib.SMTP_SSL("127.0.0.1", srv.smtps_port, context=client_ctx(),
                          local_hostname="client.example.test",
                          timeout=20) as s:
        s.ehlo()
        assert set(s.esmtp_features["auth"].split()) == \
            {"PLAIN", "LOGIN", "CRAM-MD5"}


def test_no_auth_on_port_25_by_default(make_server):
    """Without smtpd_sasl_auth_enable port 25 neither offers nor takes
    AUTH; submission still does, without the AUTH= form."""
    s = make_server()
    raw = s.raw()
    try:
        lines = ehlo_lines(raw)
        assert auth_lines(lines) == [], lines
        c, text = raw.cmd("AUTH PLAIN " + plain("alice", PASSWORD))
        assert (c, text) == (503, ["5.5.1 Error: authentication not "
                                   "enabled"])
    finally:
        raw.close()
    raw = s.raw(s.submission_port)
    try:
        lines = auth_lines(ehlo_lines(raw))
        assert [l for l in lines if l.startswith("AUTH ")], lines
        assert not [l for l in lines if l.startswith("AUTH=")], lines
    finally:
        raw.close()


# ------------------------------------------------------- real clients

@pytest.mark.parametrize("mech,user", [("PLAIN", "alice"),
                                       ("LOGIN", "alice"),
                                       ("CRAM-MD5", CRAM_USER)])
def test_swaks_login_and_relay(srv, mech, user):
    subject = "swaks-auth-%s" % mech
    r = swaks(srv, srv.submission_port, "--auth", mech, user=user,
              to=REMOTE, subject=subject)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0 Authentication successful" in r.stdout
    qid = re.search(r"250 2\.0\.0 Ok: queued as (\S+)", r.stdout).group(1)
    # Postfix's line, with the login (DESIGN §1).
    srv.wait_log(r"%s: client=localhost\[127\.0\.0\.1\], sasl_method=%s, "
                 r"sasl_username=%s$" % (qid, re.escape(mech), user))


def test_swaks_starttls_esmtpsa(srv):
    subject = "swaks-auth-tls"
    r = swaks(srv, srv.submission_port, "--tls", "--auth", "PLAIN",
              subject=subject)
    assert r.returncode == 0, r.stdout + r.stderr
    raw = srv.wait_token("bob", subject)[0].decode()
    rcvd = raw.split("\n\n", 1)[0]
    # RFC 3848: TLS and AUTH.
    assert re.search(r"by %s \(\S+\) with ESMTPSA id" % re.escape(HOSTNAME),
                     rcvd), rcvd
    # smtpd_sasl_authenticated_header is off: no login name in it.
    assert "Authenticated sender" not in rcvd


@pytest.mark.parametrize("options,user,mech", [
    ((), CRAM_USER, "CRAM-MD5"),        # curl's first choice
    (("--login-options", "AUTH=LOGIN"), "alice", "LOGIN")])
def test_curl_login(srv, tmp_path, options, user, mech):
    subject = "curl-auth-" + mech
    msg = tmp_path / "msg.txt"
    msg.write_bytes(make_msg(subject, sender="alice@example.test",
                             to="bob@example.test").replace("\n", "\r\n")
                    .encode())
    r = subprocess.run(
        ["curl", "-sS", "--max-time", "30",
         "smtp://127.0.0.1:%d" % srv.submission_port,
         "--user", "%s:%s" % (user, PASSWORD)] + list(options) +
        ["--mail-from", "alice@example.test",
         "--mail-rcpt", "bob@example.test", "--upload-file", str(msg)],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    raw = srv.wait_token("bob", subject)[0].decode()
    assert "with ESMTPA id" in raw.split("\n\n", 1)[0]
    srv.wait_log(r"client=localhost\[127\.0\.0\.1\], sasl_method=%s, "
                 r"sasl_username=%s$" % (mech, user))


def test_curl_wrong_password(srv, tmp_path):
    msg = tmp_path / "msg.txt"
    msg.write_text("Subject: x\r\n\r\nx\r\n")
    r = subprocess.run(
        ["curl", "-sS", "--max-time", "30",
         "smtp://127.0.0.1:%d" % srv.submission_port,
         "--user", "alice:wrong", "--login-options", "AUTH=PLAIN",
         "--mail-from", "alice@example.test",
         "--mail-rcpt", "bob@example.test", "--upload-file", str(msg)],
        capture_output=True, text=True, timeout=60)
    # curl: (67) Login denied
    assert r.returncode == 67, (r.returncode, r.stderr)


def test_smtplib_smtps_esmtpsa_with_header(make_server):
    """Implicit TLS and AUTH; smtpd_sasl_authenticated_header = yes
    names the login in the Received header (Postfix's form)."""
    s = make_server(smtps=True, mynetworks=MYNETWORKS,
                    conf="smtpd_sasl_authenticated_header = yes\n")
    subject = "smtplib-smtps-auth"
    with smtplib.SMTP_SSL("127.0.0.1", s.smtps_port, context=client_ctx(),
                          local_hostname="client.example.test",
                          timeout=20) as c:
        code, _ = c.login("carol", PASSWORD)
        assert code == 235
        c.sendmail("carol@example.test", ["bob@example.test"],
                   make_msg(subject).encode())
    rcvd = s.wait_token("bob", subject)[0].decode().split("\n\n", 1)[0]
    assert re.search(r"\(Authenticated sender: carol\)\n\s+by %s \(\S+\) "
                     r"with ESMTPSA id" % re.escape(HOSTNAME), rcvd), rcvd


# ------------------------------------------------------------ policy

def test_submission_requires_auth(srv):
    raw = srv.raw(srv.submission_port)
    try:
        ehlo_lines(raw)
        c, text = raw.cmd("MAIL FROM:<alice@example.test>")
        assert (c, text) == (530, ["5.7.0 Authentication required"])
        # After AUTH the same command is taken.
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
        raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
    finally:
        raw.close()
    srv.wait_log(r"NOQUEUE: reject: MAIL from localhost\[127\.0\.0\.1\]: "
                 r"530 5\.7\.0 Authentication required")


def test_smtps_requires_auth(srv):
    with smtplib.SMTP_SSL("127.0.0.1", srv.smtps_port, context=client_ctx(),
                          local_hostname="client.example.test",
                          timeout=20) as s:
        s.ehlo()
        code, text = s.mail("alice@example.test")
        assert (code, text) == (530, b"5.7.0 Authentication required")


def test_submission_auth_not_required(make_server):
    s = make_server(conf="submission_auth_required = no\n")
    subject = "submission-no-auth"
    s.send("alice@example.test", "bob@example.test", make_msg(subject),
           port=s.submission_port)
    s.wait_token("bob", subject)


def test_relay_denied_without_auth_allowed_with(srv):
    raw = srv.raw(srv.smtp_port)
    try:
        ehlo_lines(raw)
        raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
        c, text = raw.cmd("RCPT TO:<%s>" % REMOTE)
        # defer_unauth_destination (Postfix's default): 454
        assert (c, text) == (454, ["4.7.1 <%s>: Relay access denied" %
                                   REMOTE])
        # Local mail is taken from anyone.
        raw.expect(250, "RCPT TO:<bob@example.test>\r\n")
        raw.expect(250, "RSET\r\n")
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
        raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
        raw.expect(250, "RCPT TO:<%s>\r\n" % REMOTE)
        raw.expect(354, "DATA\r\n")
        lines = raw.expect(250, "Subject: relayed\r\n\r\nhi\r\n.\r\n")
        qid = re.search(r"queued as (\S+)", lines[0]).group(1)
    finally:
        raw.close()
    # Queued for the remote domain (no outbound SMTP in the test).
    srv.wait_log(r"%s: from=<alice@example\.test>, size=\d+, nrcpt=1" % qid)
    srv.wait_log(r"%s: client=localhost\[127\.0\.0\.1\], sasl_method=PLAIN, "
                 r"sasl_username=alice" % qid)


def test_relay_needs_permit_sasl_authenticated(make_server):
    """permit_sasl_authenticated after reject_unauth_destination never
    permits (Postfix evaluates in order)."""
    s = make_server(mynetworks=MYNETWORKS, conf=(
        "smtpd_relay_restrictions =\n"
        "smtpd_recipient_restrictions = reject_unauth_destination, "
        "permit_sasl_authenticated\n"))
    raw = s.raw(s.submission_port)
    try:
        ehlo_lines(raw)
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
        raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
        c, _ = raw.cmd("RCPT TO:<%s>" % REMOTE)
        assert c == 554
    finally:
        raw.close()


# ------------------------------------------------------ the exchange

def test_wrong_password_and_unknown_user_look_the_same(srv):
    replies = []
    for user, password in (("alice", "wrong-password"),
                           ("nosuchuser", PASSWORD)):
        raw = srv.raw(srv.submission_port)
        try:
            ehlo_lines(raw)
            replies.append(raw.cmd("AUTH PLAIN " + plain(user, password)))
            # The session goes on; MAIL still needs a login.
            assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 530
        finally:
            raw.close()
    assert replies[0] == replies[1] == \
        (535, ["5.7.8 Authentication credentials invalid"])
    lines = srv.wait_log(r"SASL PLAIN authentication failed", count=2)
    for line in lines:
        m = F2B_POSTFIX_SASL.search(line)
        assert m and m.group("host") == "127.0.0.1", line


def test_login_exchange_and_cancel(srv):
    raw = srv.raw(srv.submission_port)
    try:
        ehlo_lines(raw)
        # RFC 4954 §4: 334 challenges, "*" cancels with 501.
        c, text = raw.cmd("AUTH LOGIN")
        assert c == 334
        raw.expect(334, b64("alice") + "\r\n")
        assert raw.cmd("*") == (501, ["5.0.0 Authentication cancelled"])
        # A second try with an empty initial response ("=").
        c, text = raw.cmd("AUTH PLAIN =")
        assert c in (334, 535), (c, text)
        if c == 334:
            raw.expect(235, plain("alice", PASSWORD) + "\r\n")
        else:
            raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
        # RFC 4954 §4: no AUTH after a successful one.
        c, text = raw.cmd("AUTH PLAIN " + plain("alice", PASSWORD))
        assert (c, text) == (503, ["5.5.1 Error: already authenticated"])
    finally:
        raw.close()
    srv.wait_log(r"warning: localhost\[127\.0\.0\.1\]: SASL LOGIN "
                 r"authentication aborted")


def test_auth_sequence_errors(srv):
    raw = srv.raw(srv.submission_port)
    try:
        raw.expect(220)
        c, _ = raw.cmd("AUTH PLAIN " + plain("alice", PASSWORD))
        assert c == 503                 # before EHLO
        raw.expect(250, "EHLO client.example.test\r\n")
        assert raw.cmd("AUTH") == (501, ["5.5.4 Syntax: AUTH mechanism"])
        assert raw.cmd("AUTH PLAIN a b") == (
            501, ["5.5.4 Syntax: AUTH mechanism"])
        assert raw.cmd("AUTH X-NOSUCH") == (
            504, ["5.5.4 Unrecognized authentication type"])
        assert raw.cmd("AUTH GSSAPI")[0] == 504
        assert raw.cmd("AUTH PL=AIN")[0] == 504
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
        raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
    finally:
        raw.close()
    raw = srv.raw(srv.smtp_port)
    try:
        ehlo_lines(raw)
        raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
        # RFC 4954 §4: not during a mail transaction.
        c, text = raw.cmd("AUTH PLAIN " + plain("alice", PASSWORD))
        assert (c, text) == (503, ["5.5.1 Error: MAIL transaction in "
                                   "progress"])
    finally:
        raw.close()


def test_bad_base64_and_long_lines(srv):
    raw = srv.raw(srv.submission_port)
    try:
        ehlo_lines(raw)
        assert raw.cmd("AUTH PLAIN not*base64") == (
            501, ["5.5.2 Cannot decode response"])
        assert raw.cmd("AUTH PLAIN AAA=BBBB")[0] == 501
        raw.expect(334, "AUTH LOGIN\r\n")
        assert raw.cmd("%%%") == (501, ["5.5.2 Cannot decode response"])
        # A 20 kB AUTH command line, then a 20 kB response line.
        c, _ = raw.cmd("AUTH PLAIN " + "QUFB" * 5000)
        assert c == 500
        raw.expect(250, "NOOP\r\n")
        raw.expect(334, "AUTH LOGIN\r\n")
        c, text = raw.cmd("QUFB" * 5000)
        assert (c, text) == (500, ["5.5.6 Authentication Exchange line is "
                                   "too long"])
        raw.expect(250, "NOOP\r\n")
        # Still usable: a good login.
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
    finally:
        raw.close()


def test_pipelined_after_auth(srv):
    """RFC 4954 §4: AUTH PLAIN with its initial response may be followed
    by more commands in the same packet; they are taken with the login
    in place."""
    raw = srv.raw(srv.submission_port)
    try:
        ehlo_lines(raw)
        raw.send("AUTH PLAIN %s\r\nMAIL FROM:<alice@example.test>\r\n"
                 "RCPT TO:<%s>\r\nQUIT\r\n" % (plain("alice", PASSWORD),
                                                REMOTE))
        assert raw.reply()[0] == 235
        assert raw.reply()[0] == 250
        assert raw.reply()[0] == 250
        assert raw.reply()[0] == 221
    finally:
        raw.close()


def test_mail_auth_parameter(srv):
    raw = srv.raw(srv.submission_port)
    try:
        ehlo_lines(raw)
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
        # RFC 4954 §5: AUTH=<> and an xtext mailbox are accepted.
        raw.expect(250, "MAIL FROM:<alice@example.test> AUTH=<>\r\n")
        raw.expect(250, "RSET\r\n")
        raw.expect(250, "MAIL FROM:<alice@example.test> "
                   "AUTH=alice+40example.test\r\n")
        raw.expect(250, "RSET\r\n")
        c, text = raw.cmd("MAIL FROM:<alice@example.test> AUTH=bad+4")
        assert (c, text) == (501, ["5.5.4 Bad AUTH parameter syntax"])
    finally:
        raw.close()


def test_auth_in_disconnect_line(srv):
    raw = srv.raw(srv.submission_port)
    try:
        ehlo_lines(raw)
        raw.expect(535, "AUTH PLAIN %s\r\n" % plain("bob", "nope"))
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("bob", PASSWORD))
        raw.expect(221, "QUIT\r\n")
    finally:
        raw.close()
    srv.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 "
                 r"auth=1/2 quit=1 commands=3/4")


# ------------------------------------------------ plaintext and TLS

def starttls(raw):
    raw.expect(220, "STARTTLS\r\n")
    raw.sock = client_ctx().wrap_socket(raw.sock)


def test_plaintext_refused_before_starttls(make_server):
    """plaintext_auth_loopback = no: loopback is like any network, so
    PLAIN and LOGIN wait for TLS (DESIGN §7); CRAM-MD5 does not send the
    password and stays offered."""
    s = make_server(conf=AUTH_CONF + "plaintext_auth_loopback = no\n")
    raw = s.raw(s.submission_port)
    try:
        lines = ehlo_lines(raw)
        assert mechs_of(lines) == {"CRAM-MD5"}, lines
        c, text = raw.cmd("AUTH PLAIN " + plain("alice", PASSWORD))
        assert (c, text) == (538, ["5.7.11 Encryption required for "
                                   "requested authentication mechanism"])
        assert raw.cmd("AUTH LOGIN")[0] == 538
        starttls(raw)
        lines = raw.expect(250, "EHLO client.example.test\r\n")
        assert mechs_of(lines) == {"PLAIN", "LOGIN", "CRAM-MD5"}, lines
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
    finally:
        raw.close()


def test_no_mechanism_left_no_auth_line(make_server):
    s = make_server(conf="plaintext_auth_loopback = no\n")
    raw = s.raw(s.submission_port)
    try:
        assert auth_lines(ehlo_lines(raw)) == []
    finally:
        raw.close()


def test_tls_auth_only(make_server):
    s = make_server(conf=AUTH_CONF + "smtpd_tls_auth_only = yes\n")
    raw = s.raw(s.submission_port)
    try:
        assert auth_lines(ehlo_lines(raw)) == []
        c, text = raw.cmd("AUTH CRAM-MD5")
        assert (c, text) == (538, ["5.7.11 Encryption required for "
                                   "requested authentication mechanism"])
        starttls(raw)
        lines = raw.expect(250, "EHLO client.example.test\r\n")
        assert "PLAIN" in mechs_of(lines), lines
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
    finally:
        raw.close()


def test_login_forgotten_at_starttls(srv):
    """RFC 3207 §4.2: what the client said before TLS is forgotten,
    the login too."""
    raw = srv.raw(srv.submission_port)
    try:
        ehlo_lines(raw)
        raw.expect(235, "AUTH PLAIN %s\r\n" % plain("alice", PASSWORD))
        starttls(raw)
        raw.expect(250, "EHLO client.example.test\r\n")
        assert raw.cmd("MAIL FROM:<alice@example.test>")[0] == 530
    finally:
        raw.close()


# ----------------------------------------------- sender login checks

def login_map_server(make_server, restrictions):
    s = make_server(start=False, mynetworks=MYNETWORKS)
    senders = s.dir / "senders"
    s.write(senders, "alice@example.test alice\n"
                     "bob@example.test bob, carol\n"
                     "@shared.example carol\n")
    s.write_config(
        "smtpd_sender_login_maps = texthash:%s\n"
        "smtpd_sender_restrictions = %s\n" % (senders, restrictions))
    s.start()
    return s


def mail_rcpt(s, port, login, sender, rcpt="demo@example.test"):
    """(MAIL reply code, RCPT reply) of one transaction."""
    raw = s.raw(port)
    try:
        ehlo_lines(raw)
        if login:
            raw.expect(235, "AUTH PLAIN %s\r\n" % plain(login, PASSWORD))
        c, _ = raw.cmd("MAIL FROM:<%s>" % sender)
        if c != 250:
            return c, None
        return c, raw.cmd("RCPT TO:<%s>" % rcpt)
    finally:
        raw.close()


def test_sender_login_mismatch(make_server):
    s = login_map_server(make_server, "reject_sender_login_mismatch")
    sub = s.submission_port
    assert mail_rcpt(s, sub, "alice", "alice@example.test")[1][0] == 250
    assert mail_rcpt(s, sub, "carol", "bob@example.test")[1][0] == 250
    assert mail_rcpt(s, sub, "carol", "x@shared.example")[1][0] == 250
    # smtpd_delay_reject = yes: the sender is judged at RCPT.
    assert mail_rcpt(s, sub, "bob", "alice@example.test")[1] == (
        553, ["5.7.1 <alice@example.test>: Sender address rejected: not "
              "owned by user bob"])
    # An address nobody owns is not the user's either.
    assert mail_rcpt(s, sub, "bob", "nobody@example.test")[1][0] == 553
    # Without a login an owned address is refused, others are not.
    assert mail_rcpt(s, s.smtp_port, None, "alice@example.test")[1] == (
        553, ["5.7.1 <alice@example.test>: Sender address rejected: not "
              "logged in"])
    assert mail_rcpt(s, s.smtp_port, None, "stranger@else.example")[1][0] \
        == 250
    # The null sender has no owner.
    assert mail_rcpt(s, sub, "bob", "")[1][0] == 250
    s.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 553 "
               r"5\.7\.1 <alice@example\.test>: Sender address rejected: "
               r"not owned by user bob; from=<alice@example\.test> "
               r"to=<demo@example\.test> proto=ESMTPA")


def test_sender_login_variants(make_server):
    s = login_map_server(make_server,
                         "reject_known_sender_login_mismatch")
    sub = s.submission_port
    # Known address, wrong owner: refused; unknown address: allowed.
    assert mail_rcpt(s, sub, "bob", "alice@example.test")[1][0] == 553
    assert mail_rcpt(s, sub, "bob", "nobody@example.test")[1][0] == 250


def test_sender_check_at_mail_without_delay_reject(make_server):
    s = make_server(start=False, mynetworks=MYNETWORKS)
    senders = s.dir / "senders"
    s.write(senders, "alice@example.test alice\n")
    s.write_config(
        "smtpd_delay_reject = no\n"
        "smtpd_sender_login_maps = texthash:%s\n"
        "smtpd_sender_restrictions = "
        "reject_authenticated_sender_login_mismatch\n" % senders)
    s.start()
    assert mail_rcpt(s, s.submission_port, "bob",
                     "alice@example.test") == (553, None)
    # The unauthenticated variant is not in the list.
    assert mail_rcpt(s, s.smtp_port, None,
                     "alice@example.test")[1][0] == 250


# ------------------------------------------------ auth service down

def test_auth_service_down(make_server):
    """Without the auth service: no AUTH in EHLO, 454 for AUTH (a
    temporary failure, not the client's fault), never a hang; logins
    work again once posternd has restarted it."""
    s = make_server()
    auth = s.service_pid("auth")
    # posternd held still so it does not restart auth at once.
    os.kill(s.proc.pid, signal.SIGSTOP)
    try:
        os.kill(auth, signal.SIGKILL)
        assert wait_for(lambda: not proc_alive(auth))
        raw = s.raw(s.submission_port)
        try:
            assert auth_lines(ehlo_lines(raw)) == []
            c, text = raw.cmd("AUTH PLAIN " + plain("alice", PASSWORD))
            assert (c, text) == (454, ["4.7.0 Temporary authentication "
                                       "failure"])
            raw.expect(250, "NOOP\r\n")
        finally:
            raw.close()
    finally:
        os.kill(s.proc.pid, signal.SIGCONT)
    s.wait_log(r"SASL PLAIN: authentication service unavailable")
    assert not s.log_lines(r"SASL PLAIN authentication failed")

    def login():
        try:
            with s.smtp(s.submission_port) as c:
                return c.login("alice", PASSWORD)[0] == 235
        except smtplib.SMTPException:
            return False
    assert wait_for(login, timeout=30)
