"""
Relay control beyond the basic lists (issue 9): restriction classes,
the DNS server checks (check_*_mx_access, check_*_ns_access,
check_*_a_access), permit_mx_backup, reject_unverified_recipient and
reject_unverified_sender for the addresses we deliver ourselves, and the
virtual mailbox table failures that must not let unknown users in.

Clients come from loopback aliases as in test_restrictions.py: 127.0.0.5
is the trusted "office LAN", 127.0.0.9 the Internet.  DNS answers come
from the test's own server (fakedns.py).
"""
import os
import time

import pytest

from conftest import WAIT, RawSMTP, crlf, make_msg

from test_restrictions import (NOPTR, OUTSIDE, TRUSTED, build_map, ehlo,
                               envelope, raw, send_data)


def rcpt(r, addr):
    code, lines = r.cmd("RCPT TO:<%s>" % addr)
    return code, lines[0]


# ------------------------------------------------ restriction classes

def class_server(make_server, extra=""):
    srv = make_server(start=False, mynetworks="%s/32" % TRUSTED,
                      aliases="staff: demo\nboard: alice\n")
    table = build_map(srv, "protected",
                      "staff@example.test permit_internal_only\n"
                      "board@example.test insiders\n"
                      "ghost@example.test undefined_class\n")
    srv.write_config(
        NOPTR +
        "smtpd_restriction_classes = permit_internal_only, insiders, "
        "undefined_class\n"
        "permit_internal_only = permit_mynetworks, reject\n"
        # A class may use another class, named before or after it.
        "insiders = check_client_access inline:{ 127.0.0.9=DUNNO }, "
        "permit_internal_only\n"
        "smtpd_recipient_restrictions = check_recipient_access %s, "
        "permit_mynetworks, reject_unauth_destination\n" % table + extra)
    srv.start()
    return srv


def test_class_as_table_answer(make_server):
    # Postfix's RESTRICTION_CLASS_README: a protected address takes mail
    # from the office only, anybody else's from everywhere.
    srv = class_server(make_server)
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "someone@else.example", "staff@example.test")
    assert (code, line) == (554, "5.7.1 <staff@example.test>: Recipient "
                            "address rejected: Access denied")
    assert rcpt(r, "board@example.test") == (
        554, "5.7.1 <board@example.test>: Recipient address rejected: "
        "Access denied")
    assert rcpt(r, "demo@example.test")[0] == 250
    r.close()
    srv.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.9\]: 554 "
                 r"5\.7\.1 <staff@example\.test>: Recipient address "
                 r"rejected: Access denied;")
    r = raw(srv, TRUSTED)
    ehlo(r)
    assert envelope(r, "x@example.test", "staff@example.test")[0] == 250
    assert rcpt(r, "board@example.test")[0] == 250
    send_data(r, "class-internal")
    r.close()
    srv.wait_token("demo", "class-internal")
    srv.wait_token("alice", "class-internal")


def test_class_as_restriction_and_undefined_class(make_server):
    srv = class_server(make_server, "smtpd_sender_restrictions = "
                       "check_sender_access inline:{ boss@example.test="
                       "permit_internal_only }\n")
    r = raw(srv, OUTSIDE)
    ehlo(r)
    # The class from the sender stage: the sender's wording.
    code, line = envelope(r, "boss@example.test", "demo@example.test")
    assert (code, line) == (554, "5.7.1 <boss@example.test>: Sender "
                            "address rejected: Access denied")
    r.cmd("RSET")
    # A class the file names but does not define refuses, for now.
    code, line = envelope(r, "a@else.example", "ghost@example.test")
    assert (code, line) == (451, "4.3.5 Server configuration error")
    r.close()
    srv.wait_log(r"restriction class undefined_class is not defined")


def test_class_recursion_is_bounded(make_server):
    srv = make_server(start=False)
    srv.write_config(NOPTR + "smtpd_restriction_classes = loop_a, loop_b\n"
                     "loop_a = loop_b\nloop_b = loop_a\n"
                     "smtpd_recipient_restrictions = loop_a, "
                     "reject_unauth_destination\n")
    srv.start()
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "a@else.example", "demo@example.test")
    assert (code, line) == (451, "4.3.5 Server configuration error")
    r.close()
    srv.wait_log(r"restriction class loop_\w causes unreasonable recursion")


def test_class_name_must_be_declared(make_server):
    # A parameter that is neither known nor a declared class is still a
    # configuration error.
    srv = make_server(start=False)
    srv.write_config("my_class = reject\n")
    res = srv.postern("check")
    assert res.returncode != 0
    assert "unknown parameter name \"my_class\"" in res.out + res.err
    srv.write_config("smtpd_restriction_classes = my_class\n"
                     "my_class = reject\n")
    res = srv.postern("check")
    assert res.returncode == 0, res.out + res.err


# ------------------------------------------------------- server checks

def server_check_dns(fakedns):
    fakedns.set("spammy.example", "MX", [(10, "mx.bad-hoster.example")])
    fakedns.set("mx.bad-hoster.example", "A", "192.0.2.66")
    fakedns.set("other.example", "MX", [(10, "mx.other.example")])
    fakedns.set("mx.other.example", "A", "203.0.113.7")
    fakedns.set("clean.example", "MX", [(10, "mx.clean.example")])
    fakedns.set("mx.clean.example", "A", "192.0.2.10")
    fakedns.set("aonly.example", "A", "203.0.113.8")
    fakedns.set("trusted-mx.example", "MX", [(10, "mx.good.example")])
    fakedns.set("mx.good.example", "A", "192.0.2.11")
    fakedns.set("nsd.example", "NS", ["ns1.badns.example"])
    fakedns.set("ns1.badns.example", "A", "192.0.2.53")
    fakedns.set("goodns.example", "NS", ["ns.clean.example"])
    fakedns.set("ns.clean.example", "A", "192.0.2.54")
    fakedns.set("helo.bad.example", "A", "198.51.100.77")
    fakedns.set("helo.good.example", "A", "198.51.100.78")
    fakedns.servfail("broken.example")


SERVER_TABLE = """\
bad-hoster.example   REJECT Mail from this hosting company is refused
203.0.113            REJECT
mx.good.example      OK
badns.example        554 5.7.1 DNS hosted by spammers
198.51.100.77        REJECT Bad HELO address
"""


def test_mx_ns_a_access(make_server, fakedns):
    server_check_dns(fakedns)
    srv = make_server(start=False, mynetworks="%s/32" % TRUSTED)
    table = build_map(srv, "servers", SERVER_TABLE)
    senders = build_map(srv, "senders", "trusted-mx.example REJECT Not "
                        "whitelisted by its MX\n")
    srv.write_config(
        NOPTR + fakedns.conf_line() + "\n"
        "smtpd_helo_restrictions = check_helo_a_access %s\n"
        "smtpd_sender_restrictions = check_sender_mx_access %s, "
        "check_sender_ns_access %s, check_sender_access %s\n"
        "smtpd_recipient_restrictions = check_recipient_mx_access %s, "
        "permit_mynetworks, reject_unauth_destination\n"
        % (table, table, table, senders, table))
    srv.start()

    def sender(addr, helo="client.example.test"):
        r = raw(srv, OUTSIDE)
        ehlo(r, helo)
        code, line = envelope(r, addr, "demo@example.test")
        r.close()
        return code, line

    # MX host name, with its parent domains as in check_client_access.
    assert sender("spam@spammy.example") == (
        554, "5.7.1 <spam@spammy.example>: Sender address rejected: Mail "
        "from this hosting company is refused")
    # An MX host's address, by network prefix.
    assert sender("x@other.example") == (
        554, "5.7.1 <x@other.example>: Sender address rejected: Access "
        "denied")
    # No MX: the domain is its own mail host.
    assert sender("x@aonly.example")[0] == 554
    assert sender("x@clean.example")[0] == 250
    # OK is not available here (a spammer picks his own MX): it is
    # ignored and the next check runs.
    assert sender("x@trusted-mx.example") == (
        554, "5.7.1 <x@trusted-mx.example>: Sender address rejected: Not "
        "whitelisted by its MX")
    srv.wait_log(r"warning: access table hash:\S+servers: with "
                 r"check_sender_mx_access specified, action OK is "
                 r"unavailable")
    # DNS servers, found at the nearest parent that has NS records.
    assert sender("x@mail.host.nsd.example") == (
        554, "5.7.1 <x@mail.host.nsd.example>: Sender address rejected: DNS "
        "hosted by spammers")
    assert sender("x@goodns.example")[0] == 250
    # DNS trouble: logged, the check says nothing.
    assert sender("x@broken.example")[0] == 250
    srv.wait_log(r"warning: unable to look up MX host for broken\.example")
    # HELO name's addresses.
    assert sender("x@clean.example", helo="helo.bad.example") == (
        554, "5.7.1 <helo.bad.example>: Helo command rejected: Bad HELO "
        "address")
    assert sender("x@clean.example", helo="helo.good.example")[0] == 250
    # Recipient domains too; the trusted network gets no exemption
    # because the check comes first.
    r = raw(srv, TRUSTED)
    ehlo(r)
    code, line = envelope(r, "x@example.test", "y@spammy.example")
    assert (code, line) == (554, "5.7.1 <y@spammy.example>: Recipient "
                            "address rejected: Mail from this hosting "
                            "company is refused")
    assert rcpt(r, "y@clean.example")[0] == 250
    r.close()


def test_client_a_access(make_server, fakedns):
    fakedns.set("9.0.0.127.in-addr.arpa", "PTR", "client9.example.net")
    fakedns.set("client9.example.net", "A", ["127.0.0.9", "192.0.2.99"])
    srv = make_server(start=False)
    table = build_map(srv, "client_a", "192.0.2.99 REJECT Shared host\n")
    srv.write_config(fakedns.conf_line() + "\n"
                     "smtpd_client_restrictions = check_client_a_access "
                     "%s\n" % table)
    srv.start()
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "a@b.example", "demo@example.test")
    assert (code, line) == (554, "5.7.1 <client9.example.net[127.0.0.9]>: "
                            "Client host rejected: Shared host")
    r.close()


# ---------------------------------------------------- permit_mx_backup

def mx_backup_dns(fakedns):
    # We (127.0.0.1) are the second MX of backup.example, the first of
    # primary.example and no MX of elsewhere.example.
    fakedns.set("backup.example", "MX", [(10, "mx1.backup.example"),
                                         (20, "me.backup.example")])
    fakedns.set("mx1.backup.example", "A", "192.0.2.1")
    fakedns.set("me.backup.example", "A", "127.0.0.1")
    fakedns.set("primary.example", "MX", [(10, "me.primary.example")])
    fakedns.set("me.primary.example", "A", "127.0.0.1")
    fakedns.set("elsewhere.example", "MX", [(10, "mx.elsewhere.example")])
    fakedns.set("mx.elsewhere.example", "A", "192.0.2.2")


def mx_backup_server(make_server, fakedns, extra=""):
    return make_server(mynetworks="%s/32" % TRUSTED, conf=NOPTR +
                       fakedns.conf_line() + "\n"
                       "smtpd_relay_restrictions = permit_mynetworks, "
                       "permit_mx_backup, reject_unauth_destination\n" +
                       extra)


def test_permit_mx_backup(make_server, fakedns):
    mx_backup_dns(fakedns)
    srv = mx_backup_server(make_server, fakedns)
    r = raw(srv, OUTSIDE)
    ehlo(r)
    assert envelope(r, "a@b.example", "u@backup.example")[0] == 250
    # Our own domains pass as with permit_auth_destination.
    assert rcpt(r, "demo@example.test")[0] == 250
    # Primary MX: the mail would come back to us.  Not an MX at all.
    assert rcpt(r, "u@primary.example") == (
        554, "5.7.1 <u@primary.example>: Relay access denied")
    assert rcpt(r, "u@elsewhere.example") == (
        554, "5.7.1 <u@elsewhere.example>: Relay access denied")
    # Sender-specified routing is never a backup destination.
    assert rcpt(r, "u%elsewhere.example@backup.example")[0] == 554
    r.close()


@pytest.mark.parametrize("networks,code", [("192.0.2.0/24", 250),
                                           ("198.51.100.0/24", 554)])
def test_permit_mx_backup_networks(make_server, fakedns, networks, code):
    mx_backup_dns(fakedns)
    srv = mx_backup_server(make_server, fakedns,
                           "permit_mx_backup_networks = %s\n" % networks)
    r = raw(srv, OUTSIDE)
    ehlo(r)
    assert envelope(r, "a@b.example", "u@backup.example")[0] == code
    r.close()


# --------------------------------------------- reject_unverified_*

def verify_server(make_server, extra=""):
    srv = make_server(start=False, mynetworks="%s/32" % TRUSTED,
                      aliases="sales: alice\n")
    valias = build_map(srv, "virtual",
                       "alice@example.net alice\n"
                       "ghost@example.net nobody@example.test\n"
                       "lee@example.net error:nouser No such user here\n"
                       "ext@example.net someone@remote.example\n")
    vmbox = build_map(srv, "vmailbox", "v1@vm.example vm.example/v1/\n")
    srv.write_config(
        NOPTR + "smtpd_reject_unlisted_recipient = no\n"
        "recipient_delimiter = +\n"
        "virtual_alias_domains = example.net\n"
        "virtual_alias_maps = %s\n"
        "virtual_mailbox_domains = vm.example\n"
        "virtual_mailbox_maps = %s\n"
        "virtual_mailbox_base = %s/vmail\n"
        "virtual_uid_maps = static:%d\nvirtual_gid_maps = static:%d\n"
        "virtual_minimum_uid = 1\n"
        "smtpd_recipient_restrictions = reject_unverified_recipient, "
        "permit_mynetworks, reject_unauth_destination\n"
        % (valias, vmbox, srv.dir, srv.uid, srv.gid) + extra)
    srv.start()
    return srv


def test_unverified_recipient_local_and_virtual(make_server):
    srv = verify_server(make_server)
    r = raw(srv, TRUSTED)
    ehlo(r)
    assert envelope(r, "a@else.example", "demo@example.test")[0] == 250
    # Local aliases, virtual aliases and mailboxes are known.
    for ok in ("sales@example.test", "alice@example.net", "v1@vm.example",
               "postmaster@example.test", "demo+tag@example.test"):
        assert rcpt(r, ok)[0] == 250, ok
    # Postfix's default code is 450 (unverified_recipient_reject_code).
    assert rcpt(r, "nobody@example.test") == (
        450, "4.1.1 <nobody@example.test>: Recipient address rejected: "
        "unverified address: unknown user: \"nobody\"")
    assert rcpt(r, "zz@vm.example") == (
        450, "4.1.1 <zz@vm.example>: Recipient address rejected: "
        "unverified address: unknown user: \"zz@vm.example\"")
    # Through a virtual alias to an unknown local user, or an error:
    # entry, or no entry at all.
    assert rcpt(r, "ghost@example.net") == (
        450, "4.1.1 <ghost@example.net>: Recipient address rejected: "
        "unverified address: unknown user: \"nobody\"")
    assert rcpt(r, "lee@example.net") == (
        450, "4.1.1 <lee@example.net>: Recipient address rejected: "
        "unverified address: No such user here")
    assert rcpt(r, "who@example.net") == (
        450, "4.1.1 <who@example.net>: Recipient address rejected: "
        "unverified address: User unknown in virtual alias table")
    # Other hosts' addresses are not probed: they pass.
    assert rcpt(r, "ext@example.net")[0] == 250
    assert rcpt(r, "someone@remote.example")[0] == 250
    r.close()
    srv.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.5\]: 450 "
                 r"4\.1\.1 <nobody@example\.test>: Recipient address "
                 r"rejected: unverified address: unknown user: \"nobody\";")


def test_unverified_codes_and_reason(make_server):
    srv = verify_server(make_server,
                        "unverified_recipient_reject_code = 550\n")
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "a@else.example", "nobody@example.test")
    assert (code, line) == (550, "5.1.1 <nobody@example.test>: Recipient "
                            "address rejected: unverified address: unknown "
                            "user: \"nobody\"")
    assert rcpt(r, "demo@example.test")[0] == 250
    r.close()
    srv = verify_server(make_server,
                        "unverified_recipient_reject_code = 550\n"
                        "unverified_recipient_reject_reason = Address "
                        "lookup failed\n")
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "a@else.example", "nobody@example.test")
    assert (code, line) == (550, "5.1.1 <nobody@example.test>: Recipient "
                            "address rejected: Address lookup failed")
    r.close()


def test_unverified_sender(make_server):
    srv = verify_server(make_server, "smtpd_sender_restrictions = "
                        "reject_unverified_sender\n"
                        "unverified_sender_reject_code = 550\n")
    r = raw(srv, TRUSTED)
    ehlo(r)
    code, line = envelope(r, "nobody@example.test", "demo@example.test")
    assert (code, line) == (550, "5.1.7 <nobody@example.test>: Sender "
                            "address rejected: unverified address: unknown "
                            "user: \"nobody\"")
    r.cmd("RSET")
    assert envelope(r, "alice@example.test", "demo@example.test")[0] == 250
    r.cmd("RSET")
    # The null sender and other hosts' senders are not verified.
    assert envelope(r, "", "demo@example.test")[0] == 250
    r.cmd("RSET")
    assert envelope(r, "x@remote.example", "demo@example.test")[0] == 250
    r.close()


# ------------------------------- virtual mailbox table: error vs unknown

def vmbox_server(make_server, table, extra=None):
    """extra(srv): more configuration lines."""
    srv = make_server(start=False)
    maps = build_map(srv, "vmailbox", table)
    srv.write_config(
        NOPTR + "virtual_mailbox_domains = vm.example\n"
        "virtual_mailbox_maps = %s\n"
        "virtual_mailbox_base = %s/vmail\n"
        "virtual_uid_maps = static:%d\nvirtual_gid_maps = static:%d\n"
        % (maps, srv.dir, srv.uid, srv.gid) +
        (extra(srv) if extra is not None else ""))
    srv.start()
    return srv


def vm_rcpt(srv, addr):
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "a@else.example", addr)
    r.close()
    return code, line


def test_virtual_mailbox_table_failure_is_temporary(make_server):
    # A table that cannot be read says nothing about the address: 451,
    # never "accepted" and never "User unknown".
    srv = vmbox_server(make_server, "v1@vm.example vm.example/v1/\n")
    assert vm_rcpt(srv, "v1@vm.example")[0] == 250
    # The source edited after the .db was built: the table is stale
    # until `postern map build` runs, and unusable until then.
    src = srv.dir / "vmailbox"
    later = time.time() + 10
    os.utime(src, (later, later))
    time.sleep(1.2)
    assert vm_rcpt(srv, "v1@vm.example") == (
        451, "4.3.0 <v1@vm.example>: Temporary lookup failure")
    srv.wait_log(r"warning: virtual_mailbox_maps: v1@vm\.example: ")


def test_virtual_mailbox_unusable_entry_is_known(make_server):
    # An entry local cannot use (uid below virtual_minimum_uid) makes
    # the address known: accepted, local defers it and says why.
    srv = vmbox_server(make_server, "v1@vm.example vm.example/v1/\n",
                       lambda srv: "virtual_minimum_uid = %d\n"
                       % (srv.uid + 100000))
    assert vm_rcpt(srv, "v1@vm.example")[0] == 250
    assert vm_rcpt(srv, "zz@vm.example") == (
        550, "5.1.1 <zz@vm.example>: Recipient address rejected: User "
        "unknown in virtual mailbox table")


# ---------------------------- sendmail's access file (tutorial 003)

SENDMAIL_ACCESS = """\
# /etc/mail/access as the sendmail tutorial writes it
127.0.0.5                               RELAY
connect:127.0.0.12                      REJECT
from:dongliang@linux102.example.com     REJECT
to:dongliang@linux102.example.com       REJECT
from:spammer@junk.example               DISCARD
"""


def sendmail_access_server(make_server, tags="yes"):
    srv = make_server(start=False, mynetworks="127.0.0.1/32",
                      aliases="dongliang: demo\nlee: alice\n")
    table = build_map(srv, "access", SENDMAIL_ACCESS)
    srv.write_config(
        NOPTR + "sendmail_access_tags = %s\n"
        "mydestination = $myhostname, localhost, $mydomain, "
        "linux102.example.com\n"
        "smtpd_relay_restrictions = permit_mynetworks, "
        "permit_sasl_authenticated, check_client_access %s, "
        "reject_unauth_destination\n"
        "smtpd_sender_restrictions = check_sender_access %s\n"
        "smtpd_recipient_restrictions = check_recipient_access %s\n"
        % (tags, table, table, table))
    srv.start()
    return srv


def test_sendmail_access_tags(make_server):
    srv = sendmail_access_server(make_server)
    # "IP RELAY": that client may relay; others may not.
    r = raw(srv, TRUSTED)
    ehlo(r)
    assert envelope(r, "x@linux102.example.com",
                    "lee@linux103.example.com")[0] == 250
    r.close()
    r = raw(srv, OUTSIDE)
    ehlo(r)
    code, line = envelope(r, "x@else.example", "lee@linux103.example.com")
    assert (code, line) == (554, "5.7.1 <lee@linux103.example.com>: Relay "
                            "access denied")
    # from: applies to the sender only, to: to the recipient only.
    assert rcpt(r, "lee@linux102.example.com")[0] == 250
    assert rcpt(r, "dongliang@linux102.example.com") == (
        554, "5.7.1 <dongliang@linux102.example.com>: Recipient address "
        "rejected: Access denied")
    r.cmd("RSET")
    code, line = envelope(r, "dongliang@linux102.example.com",
                          "lee@linux102.example.com")
    assert (code, line) == (554, "5.7.1 <dongliang@linux102.example.com>: "
                            "Sender address rejected: Access denied")
    r.close()
    # connect: applies to the client.
    r = raw(srv, "127.0.0.12")
    ehlo(r)
    code, line = envelope(r, "x@else.example", "lee@linux102.example.com")
    assert code == 554 and line.endswith("[127.0.0.12]>: Client host "
                                         "rejected: Access denied"), line
    r.close()


def test_sendmail_access_tags_off_by_default(make_server):
    # Without sendmail_access_tags a tagged key is just a key nobody
    # looks up (as in Postfix).
    srv = sendmail_access_server(make_server, tags="no")
    r = raw(srv, OUTSIDE)
    ehlo(r)
    assert envelope(r, "dongliang@linux102.example.com",
                    "lee@linux102.example.com")[0] == 250
    assert rcpt(r, "dongliang@linux102.example.com")[0] == 250
    r.close()


# ----------------------- the vbird tutorial's /etc/postfix/access (002)

VBIRD_ACCESS = """\
127.0.0.5           OK
.trusted.example    OK
av.example          REJECT
127.0.1.            REJECT
"""


def vbird_dns(fakedns):
    for ip, name in (("127.0.0.7", "host.trusted.example"),
                     ("127.0.0.8", "av.example")):
        fakedns.set("%s.in-addr.arpa" % ".".join(reversed(ip.split("."))),
                    "PTR", name)
        fakedns.set(name, "A", ip)


def test_vbird_access_in_mynetworks(make_server, fakedns):
    # mynetworks = 127.0.0.0/8, 192.168.100.0/24, hash:/etc/postfix/access
    # with the same file that refuses some clients: an OK line trusts
    # (address, network or domain with ".domain" for its subdomains), a
    # REJECT line does not.
    vbird_dns(fakedns)
    srv = make_server(start=False)
    table = build_map(srv, "access", VBIRD_ACCESS)
    srv.write_config(fakedns.conf_line() + "\n"
                     "mynetworks = 127.0.0.1/32, %s\n" % table)
    srv.start()
    for ip, code in (("127.0.0.5", 250), ("127.0.0.7", 250),
                     ("127.0.0.8", 454), ("127.0.0.9", 454),
                     ("127.0.1.9", 454)):
        r = raw(srv, ip)
        ehlo(r)
        got = envelope(r, "a@example.test", "x@remote.example")
        assert got[0] == code, (ip, got)
        if code == 454:
            assert got[1] == "4.7.1 <x@remote.example>: Relay access denied"
        r.close()


def test_vbird_access_as_client_access(make_server, fakedns):
    # smtpd_client_restrictions = check_client_access hash:.../access
    vbird_dns(fakedns)
    srv = make_server(start=False)
    table = build_map(srv, "access", VBIRD_ACCESS)
    srv.write_config(fakedns.conf_line() + "\n"
                     "smtpd_client_restrictions = check_client_access %s\n"
                     % table)
    srv.start()
    for ip, code, line in (
            ("127.0.0.8", 554, "5.7.1 <av.example[127.0.0.8]>: Client "
             "host rejected: Access denied"),
            ("127.0.1.9", 554, "5.7.1 <unknown[127.0.1.9]>: Client host "
             "rejected: Access denied"),
            ("127.0.0.7", 250, None), ("127.0.0.9", 250, None)):
        r = raw(srv, ip)
        ehlo(r)
        got = envelope(r, "a@else.example", "demo@example.test")
        assert got[0] == code, (ip, got)
        if line is not None:
            assert got[1] == line
        r.close()


# --------------------------------------- the tutorials' telnet dialogs

def test_tutorial_telnet_dialogs(make_server):
    # 002: "helo localhost", addresses without brackets, "mail from: x"
    # with a space, and the refusal the tutorial shows for a recipient
    # outside recipient_access; 003: sendmail's "mail from :x".
    srv = make_server(start=False, mynetworks="%s/32" % TRUSTED,
                      aliases="webmaster: demo\ncarla: alice\n"
                      "lee: bob\n")
    table = build_map(srv, "recipient_access",
                      "postmaster@example.test OK\n"
                      "webmaster@example.test OK\n")
    srv.write_config(NOPTR + "smtpd_recipient_restrictions = "
                     "permit_mynetworks, check_recipient_access %s, reject\n"
                     % table)
    srv.start()
    r = raw(srv, OUTSIDE)
    r.send("helo localhost\r\n")
    assert r.reply()[0] == 250
    assert r.cmd("mail from:test@gmail.com")[0] == 250
    assert r.cmd("rcpt to:webmaster@example.test")[0] == 250
    send_data(r, "tutorial-dialog")
    assert r.cmd("mail from:test@gmail.com")[0] == 250
    code, lines = r.cmd("rcpt to:haha@example.test")
    assert (code, lines[0]) == (554, "5.7.1 <haha@example.test>: Recipient "
                                "address rejected: Access denied")
    r.cmd("RSET")
    assert r.cmd("mail from: tester@test.net")[0] == 250
    assert r.cmd("rcpt to: webmaster@example.test")[0] == 250
    r.cmd("RSET")
    # sendmail takes "mail from :x"; Postfix, and Postern with it, do
    # not: the client is told the syntax.
    code, lines = r.cmd("mail from :dongliang@linux102.example.com")
    assert (code, lines[0]) == (501, "5.5.4 Syntax: MAIL FROM:<address>")
    r.close()
    srv.wait_token("demo", "tutorial-dialog")
