"""
smtpd restrictions as the tutorials use them (issue 9): sender and
recipient access tables, relay from a trusted network, SASL relay, DNS
block lists, greylisting through a policy server (postgrey), Postfix's
reply codes and log lines, warn_if_reject, reject_unauth_pipelining,
DISCARD and HOLD, and the classic open relay tricks.

A trusted network such as the tutorials' 192.168.1.0/24 is simulated on
loopback: Linux routes all of 127.0.0.0/8 to lo, so a client can bind any
of those addresses as its source.  mynetworks = 127.0.0.5/32 then makes
127.0.0.5 the "office LAN" and 127.0.0.9 (or 127.0.0.1) the Internet.
"""
import base64
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import (PASSWORD, WAIT, RawSMTP, crlf, free_port, headers,
                      make_msg, wait_for)

TRUSTED = "127.0.0.5"
OUTSIDE = "127.0.0.9"
# No reverse DNS for the loopback aliases unless a test serves it.
NOPTR = "smtpd_peername_lookup = no\n"


class RawFrom(RawSMTP):
    """RawSMTP from a chosen loopback source address."""

    def __init__(self, port, source):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=WAIT,
                                             source_address=(source, 0))
        self.buf = b""


def raw(srv, source=OUTSIDE, greet=True):
    r = RawFrom(srv.smtp_port, source)
    if greet:
        r.expect(220)
    return r


def ehlo(r, name="client.example.test"):
    r.send("EHLO %s\r\n" % name)
    code, lines = r.reply()
    assert code == 250, (code, lines)
    return lines


def envelope(r, sender, rcpt):
    """MAIL and RCPT; returns the RCPT reply (code, first line)."""
    c, lines = r.cmd("MAIL FROM:<%s>" % sender)
    assert c == 250, (c, lines)
    c, lines = r.cmd("RCPT TO:<%s>" % rcpt)
    return c, lines[0]


def build_map(srv, name, text):
    path = srv.dir / name
    srv.write(path, text)
    srv.postern("map", "build", "hash:%s" % path, check=True)
    return "hash:%s" % path


def send_data(r, subject):
    r.expect(354, "DATA\r\n")
    lines = r.expect(250, crlf(make_msg(subject)) + b".\r\n")
    return lines[0].split()[-1]


# ------------------------------------------------------ tutorial: access

def test_sender_access_reject_from_outside(make_server):
    # The tutorial's smtpd_sender_restrictions: a forged sender of our
    # own domain is refused from outside, accepted from the LAN.
    srv = make_server(start=False, mynetworks="%s/32" % TRUSTED)
    table = build_map(srv, "sender_access", "example.com REJECT\n")
    srv.write_config(NOPTR + "smtpd_sender_restrictions = "
                     "permit_mynetworks, check_sender_access %s, permit\n"
                     % table)
    srv.start()
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "boss@example.com", "demo@example.test")
    assert (code, line) == (554, "5.7.1 <boss@example.com>: Sender address "
                            "rejected: Access denied")
    # Any subdomain too (parent_domain_matches_subdomains).
    r.cmd("RSET")
    code, line = envelope(r, "x@mail.example.com", "demo@example.test")
    assert code == 554, line
    r.cmd("RSET")
    code, line = envelope(r, "friend@other.example", "demo@example.test")
    assert code == 250, line
    r.close()
    srv.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.9\]: 554 "
                 r"5\.7\.1 <boss@example\.com>: Sender address rejected: "
                 r"Access denied; from=<boss@example\.com> "
                 r"to=<demo@example\.test> proto=ESMTP "
                 r"helo=<client\.example\.test>")
    # From the trusted network the same sender may send.
    r = raw(srv, TRUSTED)
    ehlo(r)
    code, line = envelope(r, "boss@example.com", "demo@example.test")
    assert code == 250, line
    send_data(r, "lan-sender")
    r.close()
    srv.wait_token("demo", "lan-sender")


def test_recipient_access_only_listed_from_outside(make_server):
    srv = make_server(start=False, mynetworks="%s/32" % TRUSTED,
                      aliases="webmaster: demo\n")
    table = build_map(srv, "recipient_access",
                      "postmaster@example.test OK\n"
                      "webmaster@example.test OK\n")
    srv.write_config(NOPTR + "smtpd_recipient_restrictions = "
                     "permit_mynetworks, check_recipient_access %s, reject\n"
                     % table)
    srv.start()
    r = raw(srv, OUTSIDE)
    ehlo(r)
    assert envelope(r, "someone@else.example",
                    "webmaster@example.test")[0] == 250
    assert r.cmd("RCPT TO:<postmaster@example.test>")[0] == 250
    code, lines = r.cmd("RCPT TO:<alice@example.test>")
    assert (code, lines[0]) == (554, "5.7.1 <alice@example.test>: Recipient "
                                "address rejected: Access denied")
    send_data(r, "to-webmaster")
    r.close()
    srv.wait_token("demo", "to-webmaster")
    # The LAN reaches everybody.
    r = raw(srv, TRUSTED)
    ehlo(r)
    assert envelope(r, "x@example.test", "alice@example.test")[0] == 250
    r.close()


def test_relay_from_trusted_network_only(make_server):
    srv = make_server(mynetworks="%s/32" % TRUSTED, conf=NOPTR)
    r = raw(srv, TRUSTED)
    ehlo(r)
    code, line = envelope(r, "alice@example.test", "friend@remote.example")
    assert code == 250, line
    r.close()
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "alice@example.test", "friend@remote.example")
    # Postfix's default smtpd_relay_restrictions end in
    # defer_unauth_destination.
    assert (code, line) == (454, "4.7.1 <friend@remote.example>: Relay "
                            "access denied")
    # Our own domains are open to everybody.
    assert r.cmd("RCPT TO:<demo@example.test>")[0] == 250
    r.close()


def test_mynetworks_with_access_table(make_server):
    # vbird's main.cf: mynetworks = 127.0.0.0/8, 192.168.100.0/24,
    # hash:/etc/postfix/access -- the table lists more trusted clients.
    srv = make_server(start=False)
    table = build_map(srv, "access", "127.0.0.7 RELAY\n")
    srv.mynetworks = "%s/32, %s" % (TRUSTED, table)
    srv.write_config(NOPTR)
    srv.start()
    for source, want in ((TRUSTED, 250), ("127.0.0.7", 250),
                         (OUTSIDE, 454)):
        r = raw(srv, source)
        ehlo(r)
        code, line = envelope(r, "a@example.test", "x@remote.example")
        assert code == want, (source, code, line)
        r.close()


def test_relay_denied_reject_unauth_destination(make_server):
    srv = make_server(mynetworks="%s/32" % TRUSTED, conf=NOPTR +
                      "smtpd_relay_restrictions = permit_mynetworks, "
                      "permit_sasl_authenticated, "
                      "reject_unauth_destination\n")
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "alice@example.test", "friend@remote.example")
    assert (code, line) == (554, "5.7.1 <friend@remote.example>: Relay "
                            "access denied")
    r.close()
    srv.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.9\]: 554 "
                 r"5\.7\.1 <friend@remote\.example>: Relay access denied; "
                 r"from=<alice@example\.test> to=<friend@remote\.example> "
                 r"proto=ESMTP helo=<client\.example\.test>")


def test_sasl_authenticated_client_relays(make_server):
    srv = make_server(mynetworks="%s/32" % TRUSTED, conf=NOPTR +
                      "smtpd_sasl_auth_enable = yes\n")
    plain = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "alice@example.test", "friend@remote.example")
    assert code == 454, line
    r.cmd("RSET")
    r.expect(235, "AUTH PLAIN %s\r\n" % plain)
    code, line = envelope(r, "alice@example.test", "friend@remote.example")
    assert code == 250, line
    r.close()


def test_relay_domains_accepted_from_anyone(make_server):
    srv = make_server(mynetworks="%s/32" % TRUSTED, conf=NOPTR +
                      "relay_domains = partner.example\n")
    r = raw(srv, OUTSIDE)
    ehlo(r)
    assert envelope(r, "a@b.example", "x@partner.example")[0] == 250
    assert r.cmd("RCPT TO:<x@mx.partner.example>")[0] == 250
    assert r.cmd("RCPT TO:<x@partner.example.evil>")[0] == 454
    r.close()


# ---------------------------------------------------------- relay tricks

RELAY_TRICKS = [
    "user%remote.example@example.test",
    "remote.example!user@example.test",
    "\"user@remote.example\"@example.test",
    "user@remote.example.",
    "USER@REMOTE.EXAMPLE",
    "user@[192.0.2.1]",
    "user%remote.example@[127.0.0.1]",
    "user%remote.example@EXAMPLE.TEST.",
    "remote.example!user%other.example@localhost",
    "demo%localhost@example.test",
]


@pytest.mark.parametrize("helo", ["client.example.test", "[127.0.0.1]",
                                  "mail.example.test"])
def test_open_relay_tricks_refused(make_server, helo):
    # Default configuration; 127.0.0.1 is not trusted here.  An IP
    # literal or our own name in HELO must not help either.
    srv = make_server(mynetworks="%s/32" % TRUSTED, conf=NOPTR)
    r = raw(srv, "127.0.0.1")
    ehlo(r, helo)
    assert r.cmd("MAIL FROM:<spammer@spam.example>")[0] == 250
    for rcpt in RELAY_TRICKS:
        code, lines = r.cmd("RCPT TO:<%s>" % rcpt)
        assert code in (454, 554, 550, 501), (rcpt, code, lines)
    # What stays here is delivered here: a source route names the final
    # address, an address literal of ours is local.
    for rcpt in ("@remote.example:demo@example.test", "demo@[127.0.0.1]",
                 "demo@Example.Test."):
        code, lines = r.cmd("RCPT TO:<%s>" % rcpt)
        assert code == 250, (rcpt, code, lines)
    send_data(r, "tricks-" + helo)
    r.close()
    srv.wait_token("demo", "tricks-" + helo)
    srv.wait_queue_empty()
    # Every accepted recipient was delivered here; nothing went out.
    sent = srv.log_lines(r"status=sent")
    assert sent and all("relay=local" in line for line in sent), sent
    assert not srv.log_lines(r"remote\.example>?, relay=")


def test_vrfy_expn_do_not_leak_users(server):
    r = RawSMTP(server.smtp_port)
    r.expect(220)
    ehlo(r)
    known = r.cmd("VRFY demo")
    unknown = r.cmd("VRFY nosuchuser")
    assert known[0] == unknown[0] == 252
    assert "demo" not in known[1][0] or "nosuchuser" in unknown[1][0]
    assert known[1][0].replace("demo", "X") == \
        unknown[1][0].replace("nosuchuser", "X")
    assert r.cmd("EXPN postmaster")[0] == 502
    r.close()


# ----------------------------------------------------------------- DNSBL

def dnsbl_server(make_server, fakedns, restrictions, extra=""):
    return make_server(mynetworks="%s/32" % TRUSTED,
                       conf=fakedns.conf_line() + "\n" + restrictions +
                       "\n" + extra)


def test_dnsbl_client_rejected(make_server, fakedns):
    fakedns.set("9.0.0.127.zen.example", "A", "127.0.0.2")
    fakedns.set("9.0.0.127.zen.example", "TXT", "Listed, see "
                "http://zen.example/127.0.0.9")
    srv = dnsbl_server(make_server, fakedns, "smtpd_client_restrictions = "
                       "reject_rbl_client zen.example")
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "a@b.example", "demo@example.test")
    assert (code, line) == (554, "5.7.1 Service unavailable; Client host "
                            "[127.0.0.9] blocked using zen.example; Listed, "
                            "see http://zen.example/127.0.0.9")
    # The answer is kept for the session: one question per name.
    assert r.cmd("RCPT TO:<demo@example.test>")[0] == 554
    r.close()
    assert fakedns.queried("9.0.0.127.zen.example", "A") == 1
    srv.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.9\]: 554 "
                 r"5\.7\.1 Service unavailable; Client host \[127\.0\.0\.9\] "
                 r"blocked using zen\.example; Listed")
    # A client that is not listed passes.
    r = raw(srv, "127.0.0.10")
    ehlo(r)
    assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
    send_data(r, "not-listed")
    r.close()
    srv.wait_token("demo", "not-listed")


def test_dnsbl_reply_pattern_and_failures(make_server, fakedns):
    fakedns.set("9.0.0.127.zen.example", "A", "127.0.0.2")
    fakedns.servfail("10.0.0.127.zen.example")
    srv = dnsbl_server(make_server, fakedns, "smtpd_recipient_restrictions "
                       "= reject_rbl_client zen.example=127.0.0.[3..11]")
    # Listed, but with an answer outside the pattern: passes.
    r = raw(srv, OUTSIDE)
    ehlo(r)
    assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
    r.close()
    # A list that fails is no reason to refuse mail.
    r = raw(srv, "127.0.0.10")
    ehlo(r)
    assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
    r.close()
    srv.wait_log(r"warning: 10\.0\.0\.127\.zen\.example: RBL lookup error")


def test_dnsbl_slow_server_does_not_block_others(make_server, fakedns):
    # The list never answers for 127.0.0.9: its session waits for the
    # resolver's timeout while other sessions are served at once.
    fakedns.drop("9.0.0.127.zen.example")
    srv = dnsbl_server(make_server, fakedns, "smtpd_client_restrictions = "
                       "reject_rbl_client zen.example")
    slow = raw(srv, OUTSIDE)
    ehlo(slow)
    assert slow.cmd("MAIL FROM:<a@b.example>")[0] == 250
    slow.send("RCPT TO:<demo@example.test>\r\n")
    time.sleep(0.3)
    t0 = time.monotonic()
    fast = raw(srv, "127.0.0.10")
    ehlo(fast)
    assert envelope(fast, "a@b.example", "demo@example.test")[0] == 250
    assert time.monotonic() - t0 < 2
    fast.close()
    # The slow one goes on when the lookup gives up (not listed).
    code, lines = slow.reply()
    assert code == 250, lines
    slow.close()


def test_rhsbl_sender(make_server, fakedns):
    fakedns.set("spam.example.dbl.example", "A", "127.0.1.2")
    srv = dnsbl_server(make_server, fakedns, "smtpd_sender_restrictions = "
                       "reject_rhsbl_sender dbl.example")
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "x@spam.example", "demo@example.test")
    assert (code, line) == (554, "5.7.1 Service unavailable; Sender address "
                            "[x@spam.example] blocked using dbl.example")
    r.cmd("RSET")
    assert envelope(r, "x@ham.example", "demo@example.test")[0] == 250
    r.close()


# ------------------------------------------------------- DNS: names, domains

def test_unknown_sender_and_recipient_domain(make_server, fakedns):
    fakedns.set("good.example", "MX", [(10, "mx.good.example")])
    fakedns.set("mx.good.example", "A", "192.0.2.1")
    fakedns.set("aonly.example", "A", "192.0.2.2")
    fakedns.set("nullmx.example", "MX", "0 .")
    fakedns.servfail("broken.example")
    srv = dnsbl_server(make_server, fakedns, "smtpd_sender_restrictions = "
                       "reject_unknown_sender_domain\n"
                       "smtpd_recipient_restrictions = "
                       "reject_unknown_recipient_domain")
    r = raw(srv, TRUSTED)
    ehlo(r)
    assert envelope(r, "a@good.example", "x@aonly.example")[0] == 250
    r.cmd("RSET")
    code, line = envelope(r, "a@nowhere.example", "demo@example.test")
    assert (code, line) == (450, "4.1.8 <a@nowhere.example>: Sender address "
                            "rejected: Domain not found")
    r.cmd("RSET")
    code, line = envelope(r, "a@good.example", "x@nowhere.example")
    assert (code, line) == (450, "4.1.2 <x@nowhere.example>: Recipient "
                            "address rejected: Domain not found")
    code, lines = r.cmd("RCPT TO:<x@nullmx.example>")
    assert (code, lines[0]) == (556, "5.1.10 <x@nullmx.example>: Recipient "
                                "address rejected: Domain nullmx.example "
                                "does not accept mail (nullMX)")
    # A DNS failure defers (defer_if_permit), never rejects.
    r.cmd("RSET")
    code, line = envelope(r, "a@broken.example", "demo@example.test")
    assert (code, line) == (450, "4.1.8 <a@broken.example>: Sender address "
                            "rejected: Domain not found")
    # Our own domains are never looked up.
    r.cmd("RSET")
    assert envelope(r, "a@example.test", "demo@example.test")[0] == 250
    r.close()
    assert fakedns.queried("example.test") == 0


def test_client_hostname_checks(make_server, fakedns):
    # 127.0.0.9: PTR and A agree.  127.0.0.10: PTR to a name that does
    # not lead back.  127.0.0.11: no PTR.
    fakedns.set("9.0.0.127.in-addr.arpa", "PTR", "client9.example.net")
    fakedns.set("client9.example.net", "A", "127.0.0.9")
    fakedns.set("10.0.0.127.in-addr.arpa", "PTR", "forged.example.net")
    fakedns.set("forged.example.net", "A", "192.0.2.99")
    srv = dnsbl_server(make_server, fakedns, "smtpd_client_restrictions = "
                       "reject_unknown_client_hostname",
                       "smtpd_helo_restrictions = "
                       "reject_unknown_reverse_client_hostname\n")
    r = raw(srv, "127.0.0.9")
    ehlo(r)
    assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
    r.close()
    srv.wait_log(r"connect from client9\.example\.net\[127\.0\.0\.9\]")
    r = raw(srv, "127.0.0.10")
    ehlo(r)
    code, line = envelope(r, "a@b.example", "demo@example.test")
    assert (code, line) == (450, "4.7.25 Client host rejected: cannot find "
                            "your hostname, [127.0.0.10]")
    r.close()
    srv.wait_log(r"connect from unknown\[127\.0\.0\.10\]")
    srv.wait_log(r"warning: hostname forged\.example\.net does not resolve "
                 r"to address 127\.0\.0\.10")
    r = raw(srv, "127.0.0.11")
    ehlo(r)
    code, line = envelope(r, "a@b.example", "demo@example.test")
    assert (code, line) == (450, "4.7.25 Client host rejected: cannot find "
                            "your hostname, [127.0.0.11]")
    r.close()


def test_client_reverse_hostname(make_server, fakedns):
    fakedns.set("10.0.0.127.in-addr.arpa", "PTR", "forged.example.net")
    fakedns.set("forged.example.net", "A", "192.0.2.99")
    srv = dnsbl_server(make_server, fakedns, "smtpd_client_restrictions = "
                       "reject_unknown_reverse_client_hostname")
    # A PTR that does not lead back is still a reverse name.
    r = raw(srv, "127.0.0.10")
    ehlo(r)
    assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
    r.close()
    r = raw(srv, "127.0.0.11")
    ehlo(r)
    code, line = envelope(r, "a@b.example", "demo@example.test")
    assert (code, line) == (450, "4.7.1 Client host rejected: cannot find "
                            "your reverse hostname, [127.0.0.11]")
    r.close()


def test_helo_hostname_checks(make_server, fakedns):
    fakedns.set("known.example", "A", "192.0.2.5")
    srv = dnsbl_server(make_server, fakedns, "smtpd_helo_required = yes\n"
                       "smtpd_helo_restrictions = "
                       "reject_invalid_helo_hostname, "
                       "reject_non_fqdn_helo_hostname, "
                       "reject_unknown_helo_hostname")
    cases = [
        ("known.example", 250, None),
        ("known.example.", 250, None),
        ("foo", 504, "5.5.2 <foo>: Helo command rejected: need "
         "fully-qualified hostname"),
        ("bad_name!.example", 501, "5.5.2 <bad_name!.example>: Helo command "
         "rejected: Invalid name"),
        ("[1.2.3]", 501, "5.5.2 <[1.2.3]>: Helo command rejected: invalid "
         "ip address"),
        ("[127.0.0.1]", 250, None),
        ("unknown.example", 450, "4.7.1 <unknown.example>: Helo command "
         "rejected: Host not found"),
    ]
    for helo, want, text in cases:
        r = raw(srv, TRUSTED)
        ehlo(r, helo)
        code, line = envelope(r, "a@b.example", "demo@example.test")
        assert code == want, (helo, code, line)
        if text:
            assert line == text, (helo, line)
        r.close()
    # smtpd_helo_required: no MAIL before HELO.
    r = raw(srv, TRUSTED)
    assert r.cmd("MAIL FROM:<a@b.example>")[0] == 503
    r.close()


def test_delay_reject_no_rejects_at_each_stage(make_server):
    srv = make_server(start=False, mynetworks="%s/32" % TRUSTED)
    table = build_map(srv, "clients", "127.0.0.9 REJECT go away\n")
    srv.write_config(NOPTR + "smtpd_delay_reject = no\n"
                     "smtpd_client_restrictions = check_client_access %s\n"
                     "smtpd_helo_restrictions = "
                     "reject_non_fqdn_helo_hostname\n"
                     "smtpd_sender_restrictions = reject_non_fqdn_sender\n"
                     % table)
    srv.start()
    # Refused at connect: the refusal replaces the greeting, every
    # command but QUIT is answered 503.
    r = raw(srv, OUTSIDE, greet=False)
    code, lines = r.reply()
    assert (code, lines[0]) == (554, "5.7.1 <localhost[127.0.0.9]>: Client "
                                "host rejected: go away")
    code, lines = r.cmd("EHLO client.example.test")
    assert (code, lines[0]) == (503, "5.7.0 Error: access denied for "
                                "localhost[127.0.0.9]")
    assert r.cmd("MAIL FROM:<a@b.example>")[0] == 503
    assert r.cmd("QUIT")[0] == 221
    r.close()
    srv.wait_log(r"NOQUEUE: reject: CONNECT from localhost\[127\.0\.0\.9\]: "
                 r"554 5\.7\.1 <localhost\[127\.0\.0\.9\]>: Client host "
                 r"rejected: go away; proto=SMTP")
    r = raw(srv, TRUSTED)
    code, lines = r.cmd("EHLO foo")
    assert (code, lines[0]) == (504, "5.5.2 <foo>: Helo command rejected: "
                                "need fully-qualified hostname")
    ehlo(r)
    code, lines = r.cmd("MAIL FROM:<user@localdomainonly>")
    assert (code, lines[0]) == (504, "5.5.2 <user@localdomainonly>: Sender "
                                "address rejected: need fully-qualified "
                                "address")
    assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
    r.close()


# ------------------------------------------------------ tables: actions

def test_access_table_actions(make_server):
    srv = make_server(start=False, mynetworks="%s/32" % TRUSTED,
                      aliases="lan: demo\n")
    table = build_map(srv, "rcpt_access",
                      "code@example.test   550 5.1.1 Nobody here\n"
                      "later@example.test  DEFER come back later\n"
                      "plain@example.test  REJECT\n"
                      "lan@example.test    permit_mynetworks, reject\n"
                      "table@example.test  check_client_access hash:/x\n"
                      "discard@example.test DISCARD\n"
                      "hold@example.test   HOLD\n"
                      "warned@example.test WARN watch this\n"
                      "dunno@example.test  DUNNO\n")
    srv.write_config(NOPTR + "smtpd_recipient_restrictions = "
                     "check_recipient_access %s, permit\n" % table)
    srv.start()
    r = raw(srv, OUTSIDE)
    ehlo(r)
    assert r.cmd("MAIL FROM:<a@b.example>")[0] == 250
    expect = {
        "code@example.test": (550, "5.1.1 <code@example.test>: Recipient "
                              "address rejected: Nobody here"),
        "later@example.test": (450, "4.7.1 <later@example.test>: Recipient "
                               "address rejected: come back later"),
        "plain@example.test": (554, "5.7.1 <plain@example.test>: Recipient "
                               "address rejected: Access denied"),
        "lan@example.test": (554, "5.7.1 <lan@example.test>: Recipient "
                             "address rejected: Access denied"),
        "table@example.test": (451, "4.3.5 Server configuration error"),
        "warned@example.test": (550, None),
        "dunno@example.test": (550, None),
    }
    for rcpt, (code, text) in expect.items():
        c, lines = r.cmd("RCPT TO:<%s>" % rcpt)
        assert c == code, (rcpt, c, lines)
        if text:
            assert lines[0] == text, (rcpt, lines)
    r.close()
    srv.wait_log(r"NOQUEUE: warn: RCPT from localhost\[127\.0\.0\.9\]: "
                 r"watch this; from=<a@b\.example> to=<warned@example\.test>")
    srv.wait_log(r"warning: access table hash:\S+ has entry with lookup "
                 r"table: check_client_access hash:/x")
    # The restriction list in the table permits the LAN.
    r = raw(srv, TRUSTED)
    ehlo(r)
    assert envelope(r, "a@b.example", "lan@example.test")[0] == 250
    r.close()


def test_discard_action_drops_the_message(make_server):
    srv = make_server(start=False, aliases="trash: demo\n")
    table = build_map(srv, "rcpt_access", "trash@example.test DISCARD\n")
    srv.write_config(NOPTR + "smtpd_recipient_restrictions = "
                     "check_recipient_access %s\n" % table)
    srv.start()
    r = raw(srv, "127.0.0.1")
    ehlo(r)
    assert envelope(r, "a@b.example", "trash@example.test")[0] == 250
    # Every further recipient of the message goes with it.
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    qid = send_data(r, "discard-me")
    r.close()
    srv.wait_log(r"NOQUEUE: discard: RCPT from localhost\[127\.0\.0\.1\]: "
                 r"<trash@example\.test>: Recipient address triggers "
                 r"DISCARD action")
    srv.wait_log(r"%s: discarded" % qid)
    # Something else still arrives; the discarded one never does.
    srv.send("a@b.example", "alice@example.test", make_msg("after-discard"))
    srv.wait_token("alice", "after-discard")
    assert not srv.with_token("alice", "discard-me")
    assert not srv.with_token("demo", "discard-me")


def test_hold_action_keeps_the_message_on_hold(make_server):
    srv = make_server(start=False)
    table = build_map(srv, "sender_access", "suspect.example HOLD\n")
    srv.write_config(NOPTR + "smtpd_sender_restrictions = "
                     "check_sender_access %s\n" % table)
    srv.start()
    qid = srv.send("x@suspect.example", "demo@example.test",
                   make_msg("held-message"))
    assert wait_for(lambda: (srv.spool / "hold" / qid).exists())
    out = srv.mailq().out
    assert qid + "!" in out, out
    time.sleep(0.5)
    assert not srv.with_token("demo", "held-message")
    srv.wait_log(r"NOQUEUE: hold: RCPT from localhost\[127\.0\.0\.1\]: "
                 r"<x@suspect\.example>: Sender address triggers HOLD action")
    assert srv.postern("queue", "release", qid).returncode == 0
    srv.wait_token("demo", "held-message")


def test_warn_if_reject_logs_instead(make_server):
    srv = make_server(start=False)
    table = build_map(srv, "sender_access", "bad.example REJECT\n")
    srv.write_config(NOPTR + "smtpd_sender_restrictions = warn_if_reject, "
                     "check_sender_access %s\n" % table)
    srv.start()
    srv.send("x@bad.example", "demo@example.test", make_msg("only-warned"))
    srv.wait_token("demo", "only-warned")
    srv.wait_log(r"NOQUEUE: reject_warning: RCPT from localhost\[127\.0\.0"
                 r"\.1\]: 554 5\.7\.1 <x@bad\.example>: Sender address "
                 r"rejected: Access denied; from=<x@bad\.example> "
                 r"to=<demo@example\.test> proto=ESMTP "
                 r"helo=<client\.example\.test>")
    assert not srv.log_lines(r"NOQUEUE: reject: RCPT")


def test_reject_unauth_pipelining(make_server):
    srv = make_server(conf=NOPTR + "smtpd_data_restrictions = "
                      "reject_unauth_pipelining\n")
    r = raw(srv, "127.0.0.1")
    ehlo(r)
    assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
    # The message sent right behind DATA, before the 354.
    r.send("DATA\r\nSubject: too eager\r\n\r\nhi\r\n.\r\n")
    code, lines = r.reply()
    assert (code, lines[0]) == (503, "5.5.0 <DATA>: Data command rejected: "
                                "Improper use of SMTP command pipelining")
    r.close()
    srv.wait_log(r"NOQUEUE: reject: DATA from localhost\[127\.0\.0\.1\]: 503 "
                 r"5\.5\.0 <DATA>: Data command rejected: Improper use of "
                 r"SMTP command pipelining")
    # A client that waits for each reply is fine.
    srv.send("a@b.example", "demo@example.test", make_msg("patient"))
    srv.wait_token("demo", "patient")


def test_reject_multi_recipient_bounce(make_server):
    srv = make_server(conf=NOPTR + "smtpd_data_restrictions = "
                      "reject_multi_recipient_bounce\n")
    r = raw(srv, "127.0.0.1")
    ehlo(r)
    assert envelope(r, "", "demo@example.test")[0] == 250
    assert r.cmd("RCPT TO:<alice@example.test>")[0] == 250
    code, lines = r.cmd("DATA")
    assert (code, lines[0]) == (550, "5.5.3 <DATA>: Data command rejected: "
                                "Multi-recipient bounce")
    r.close()


def test_configuration_errors_refuse_safely(make_server):
    # An unknown restriction: a temporary refusal and a warning.
    srv = make_server(conf=NOPTR + "smtpd_recipient_restrictions = "
                      "reject_bogus_thing\n")
    r = raw(srv, "127.0.0.1")
    ehlo(r)
    code, line = envelope(r, "a@b.example", "demo@example.test")
    assert (code, line) == (451, "4.3.5 Server configuration error")
    r.close()
    srv.wait_log(r'unknown smtpd restriction: "reject_bogus_thing"')


def test_no_relay_refusal_means_no_relay(make_server):
    # Neither list can refuse relaying: Postfix refuses to start; we
    # refuse every recipient for now instead of being an open relay.
    srv = make_server(mynetworks="%s/32" % TRUSTED, conf=NOPTR +
                      "smtpd_relay_restrictions =\n"
                      "smtpd_recipient_restrictions = permit_mynetworks\n")
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "a@b.example", "x@remote.example")
    assert code == 451, line
    r.close()
    srv.wait_log(r"neither smtpd_relay_restrictions nor "
                 r"smtpd_recipient_restrictions can refuse relaying")


def test_missing_table_is_a_temporary_error(make_server):
    srv = make_server(conf=NOPTR + "smtpd_sender_restrictions = "
                      "check_sender_access hash:/nonexistent/table\n")
    r = raw(srv, "127.0.0.1")
    ehlo(r)
    code, line = envelope(r, "a@b.example", "demo@example.test")
    assert (code, line) == (451, "4.3.5 <a@b.example>: Sender address "
                            "rejected: Server configuration error")
    r.close()


def test_unknown_virtual_alias_rejected_at_rcpt(make_server):
    srv = make_server(start=False)
    table = build_map(srv, "virtual", "info@virt.example demo\n")
    srv.write_config(NOPTR + "virtual_alias_domains = virt.example\n"
                     "virtual_alias_maps = %s\n" % table)
    srv.start()
    r = raw(srv, "127.0.0.1")
    ehlo(r)
    code, line = envelope(r, "a@b.example", "nobody@virt.example")
    assert (code, line) == (550, "5.1.1 <nobody@virt.example>: Recipient "
                            "address rejected: User unknown in virtual alias "
                            "table")
    assert r.cmd("RCPT TO:<info@virt.example>")[0] == 250
    send_data(r, "via-virtual")
    r.close()
    srv.wait_token("demo", "via-virtual")


# ------------------------------------------------------ policy services

class PolicyServer:
    """A Postfix policy server in Python: answers from a function of the
    request's attributes, records every request."""

    def __init__(self, answer, delay=0):
        self.answer = answer
        self.delay = delay
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,),
                             daemon=True).start()

    def conn(self, c):
        f = c.makefile("rb")
        try:
            while True:
                attrs = {}
                while True:
                    line = f.readline()
                    if not line:
                        return
                    line = line.rstrip(b"\n").decode()
                    if not line:
                        break
                    k, _, v = line.partition("=")
                    attrs[k] = v
                self.requests.append(attrs)
                time.sleep(self.delay)
                c.sendall(("action=%s\n\n" % self.answer(attrs)).encode())
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()


def test_policy_service_protocol(make_server):
    def answer(a):
        return {"deny@example.test": "REJECT policy says no",
                "later@example.test": "DEFER_IF_PERMIT try again"}.get(
                    a.get("recipient"), "DUNNO")
    pol = PolicyServer(answer)
    try:
        srv = make_server(conf=NOPTR + "smtpd_recipient_restrictions = "
                          "reject_unauth_destination, check_policy_service "
                          "inet:127.0.0.1:%d\n" % pol.port,
                          aliases="deny: demo\nlater: demo\n")
        r = raw(srv, "127.0.0.1")
        ehlo(r)
        assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
        code, lines = r.cmd("RCPT TO:<deny@example.test>")
        assert (code, lines[0]) == (554, "5.7.1 <deny@example.test>: "
                                    "Recipient address rejected: policy "
                                    "says no")
        code, lines = r.cmd("RCPT TO:<later@example.test>")
        assert (code, lines[0]) == (450, "4.7.1 <later@example.test>: "
                                    "Recipient address rejected: try again")
        send_data(r, "policy-ok")
        assert envelope(r, "c@d.example", "demo@example.test")[0] == 250
        r.close()
        srv.wait_token("demo", "policy-ok")
        reqs = pol.requests
        assert len(reqs) == 4, reqs
        first = reqs[0]
        assert first["request"] == "smtpd_access_policy"
        assert first["protocol_state"] == "RCPT"
        assert first["protocol_name"] == "ESMTP"
        assert first["client_address"] == "127.0.0.1"
        assert first["client_name"] == "localhost"
        assert first["helo_name"] == "client.example.test"
        assert first["sender"] == "a@b.example"
        assert first["recipient"] == "demo@example.test"
        # One instance per mail transaction (postgrey relies on it).
        assert reqs[1]["instance"] == first["instance"]
        assert reqs[3]["instance"] != first["instance"]
    finally:
        pol.close()


def test_policy_service_failures_use_default_action(make_server):
    pol = PolicyServer(lambda a: "DUNNO", delay=5)
    dead = free_port()
    try:
        srv = make_server(conf=NOPTR +
                          "smtpd_policy_service_timeout = 1s\n"
                          "smtpd_policy_service_retry_delay = 0s\n"
                          "smtpd_recipient_restrictions = "
                          "reject_unauth_destination, check_policy_service "
                          "inet:127.0.0.1:%d\n" % dead)
        r = raw(srv, "127.0.0.1")
        ehlo(r)
        code, line = envelope(r, "a@b.example", "demo@example.test")
        assert (code, line) == (451, "4.3.5 <demo@example.test>: Recipient "
                                "address rejected: Server configuration "
                                "problem")
        r.close()
        srv.wait_log(r"warning: problem talking to server "
                     r"inet:127\.0\.0\.1:%d" % dead)
        # A server too slow to answer.
        srv.write_config(NOPTR + "smtpd_policy_service_timeout = 1s\n"
                         "smtpd_policy_service_retry_delay = 0s\n"
                         "smtpd_policy_service_default_action = DUNNO\n"
                         "smtpd_recipient_restrictions = "
                         "reject_unauth_destination, check_policy_service "
                         "inet:127.0.0.1:%d\n" % pol.port)
        assert srv.postern("reload").returncode == 0
        time.sleep(1)
        r = raw(srv, "127.0.0.1")
        ehlo(r)
        t0 = time.monotonic()
        assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
        assert time.monotonic() - t0 < 4.5
        r.close()
    finally:
        pol.close()


POSTGREY = "/usr/sbin/postgrey"


@pytest.fixture
def postgrey(tmp_path):
    """A private postgrey on a free port, greylisting for 1 second."""
    if not os.access(POSTGREY, os.X_OK):
        pytest.skip("postgrey is not installed")
    port = free_port()
    dbdir = tmp_path / "pgdb"
    dbdir.mkdir()
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    if os.geteuid() == 0:
        os.chmod(tmp_path, 0o755)
    empty = tmp_path / "empty"
    empty.write_text("")
    proc = subprocess.Popen(
        [POSTGREY, "--inet=127.0.0.1:%d" % port, "--dbdir=%s" % dbdir,
         "--delay=1", "--user=%s" % user, "--pidfile=%s" % (tmp_path / "pid"),
         "--whitelist-clients=%s" % empty,
         "--whitelist-recipients=%s" % empty],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return proc.poll() is not None
    wait_for(up, timeout=20)
    if proc.poll() is not None:
        pytest.skip("postgrey does not start here: %s" %
                    proc.stderr.read().decode(errors="replace")[-300:])
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_postgrey_greylisting(make_server, postgrey):
    srv = make_server(mynetworks="%s/32" % TRUSTED, conf=NOPTR +
                      "smtpd_recipient_restrictions = permit_mynetworks, "
                      "reject_unauth_destination, check_policy_service "
                      "inet:127.0.0.1:%d\n" % postgrey)
    # The first attempt is greylisted...
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "sender@remote.example", "demo@example.test")
    assert code == 450, line
    assert "Recipient address rejected: Greylisted" in line, line
    assert line.startswith("4."), line
    r.close()
    srv.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.9\]: 450 "
                 r"4\.\d\.\d <demo@example\.test>: Recipient address "
                 r"rejected: Greylisted")
    # ...a retry after the delay gets through, as a real MTA would.
    time.sleep(2.2)
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "sender@remote.example", "demo@example.test")
    assert code == 250, line
    send_data(r, "greylisted-then-accepted")
    r.close()
    msg = srv.wait_token("demo", "greylisted-then-accepted")[0]
    # postgrey's PREPEND action, above our Received: header
    names = [n for n, v in headers(msg)]
    assert "X-Greylist" in names, names
    assert names.index("X-Greylist") < names.index("Received")
    # The trusted network is not greylisted at all.
    r = raw(srv, TRUSTED)
    ehlo(r)
    assert envelope(r, "x@remote.example", "demo@example.test")[0] == 250
    r.close()


def test_end_of_data_policy_and_bdat(make_server):
    # smtpd_end_of_data_restrictions with a policy server (the check
    # waits for it after the message), and smtpd_data_restrictions on
    # BDAT with the chunk already sent behind the command.
    def answer(a):
        if a["protocol_state"] == "END-OF-MESSAGE" and int(a["size"]) > 2000:
            return "REJECT message too large for this recipient"
        return "DUNNO"
    pol = PolicyServer(answer, delay=0.2)
    try:
        srv = make_server(conf=NOPTR +
                          "smtpd_data_restrictions = check_policy_service "
                          "inet:127.0.0.1:%d\n"
                          "smtpd_end_of_data_restrictions = "
                          "check_policy_service inet:127.0.0.1:%d\n"
                          % (pol.port, pol.port))
        r = raw(srv, "127.0.0.1")
        ehlo(r)
        assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
        r.send("DATA\r\n")
        r.expect(354)
        big = make_msg("too-big", body="x" * 3000 + "\n")
        code, lines = r.cmd(crlf(big).decode() + ".")
        assert (code, lines[0]) == (554, "5.7.1 <END-OF-MESSAGE>: "
                                    "End-of-data rejected: message too "
                                    "large for this recipient")
        # The session goes on: a small message over BDAT, the chunk
        # pipelined behind the command.
        assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
        body = crlf(make_msg("bdat-small"))
        r.send(b"BDAT %d LAST\r\n" % len(body) + body)
        code, lines = r.reply()
        assert code == 250, lines
        r.close()
        srv.wait_token("demo", "bdat-small")
        assert not srv.with_token("demo", "too-big")
        eod = [q for q in pol.requests
               if q["protocol_state"] == "END-OF-MESSAGE"]
        assert eod and eod[0]["queue_id"] and int(eod[0]["size"]) > 3000
        assert eod[0]["recipient_count"] == "1"
        assert any(q["protocol_state"] == "DATA" for q in pol.requests)
        srv.wait_log(r": reject: END-OF-MESSAGE from localhost\[127\.0\.0\.1"
                     r"\]: 554 5\.7\.1 <END-OF-MESSAGE>: End-of-data "
                     r"rejected: message too large")
    finally:
        pol.close()


def test_data_restriction_refuses_bdat_chunk(make_server):
    srv = make_server(conf=NOPTR + "smtpd_data_restrictions = reject\n")
    r = raw(srv, "127.0.0.1")
    ehlo(r)
    assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
    body = crlf(make_msg("bdat-refused"))
    r.send(b"BDAT %d LAST\r\n" % len(body) + body)
    code, lines = r.reply()
    assert (code, lines[0]) == (554, "5.7.1 <DATA>: Data command rejected: "
                                "Access denied")
    # The chunk was read and dropped: the next command is a command.
    assert r.cmd("NOOP")[0] == 250
    r.close()


def test_helo_dns_check_at_helo(make_server, fakedns):
    # smtpd_delay_reject = no: the HELO name is looked up (DNS, off the
    # loop) when EHLO arrives, and EHLO itself gets the answer.
    fakedns.set("known.example", "A", "192.0.2.5")
    srv = dnsbl_server(make_server, fakedns, "smtpd_delay_reject = no\n"
                       "smtpd_helo_restrictions = "
                       "reject_unknown_helo_hostname")
    r = raw(srv, TRUSTED)
    code, lines = r.cmd("EHLO unknown.example")
    assert (code, lines[0]) == (450, "4.7.1 <unknown.example>: Helo command "
                                "rejected: Host not found")
    code, lines = r.cmd("EHLO known.example")
    assert code == 250 and "PIPELINING" in lines, lines
    assert envelope(r, "a@b.example", "demo@example.test")[0] == 250
    r.close()


@pytest.mark.parametrize("restrictions, code, text", [
    ("defer_if_reject, reject", 450, "4.7.0 <demo@example.test>: Recipient "
     "address rejected: defer_if_reject requested"),
    ("defer_if_permit, permit", 450, "4.7.0 <demo@example.test>: Recipient "
     "address rejected: defer_if_permit requested"),
    ("defer_if_permit, reject", 554, "5.7.1 <demo@example.test>: Recipient "
     "address rejected: Access denied"),
    ("defer", 450, "4.3.2 <demo@example.test>: Recipient address rejected: "
     "Try again later"),
    ("warn_if_reject, reject, permit", 250, None),
])
def test_deferral_elements(make_server, restrictions, code, text):
    srv = make_server(conf=NOPTR + "smtpd_recipient_restrictions = %s\n"
                      % restrictions)
    r = raw(srv, "127.0.0.1")
    ehlo(r)
    got, line = envelope(r, "a@b.example", "demo@example.test")
    assert got == code, line
    if text:
        assert line == text
    r.close()
