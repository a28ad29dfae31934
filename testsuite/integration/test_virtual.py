"""
Virtual domains as the tutorials set them up: virtual alias domains
(sendmail's virtusertable, Postfix's virtual_alias_maps) with an
"@domain" catch-all, specific entries, "%1" and "error:" results, and
virtual mailbox domains for several domains on one server, delivered
into separate mailboxes and read back with POP3 and IMAP as
user@domain.
"""
import imaplib
import os
import poplib
import pwd

import pytest

from conftest import (PASSWORD, WAIT, header_values, make_msg, parse,
                      requires_root, wait_for)

SENDER = "demo@example.test"


def rcpt_reply(srv, rcpt, sender=SENDER):
    """(code, text) of RCPT TO:<rcpt> after a good MAIL FROM."""
    with srv.smtp() as s:
        s.ehlo()
        code, text = s.mail(sender)
        assert code == 250, (code, text)
        code, text = s.rcpt(rcpt)
        return code, text.decode()


def build_map(srv, name, text):
    """Write a table source in the server directory and build its .db
    with `postern map build` (as postmap); returns "hash:PATH"."""
    path = srv.dir / name
    srv.write(path, text)
    srv.postern("map", "build", "hash:%s" % path, check=True)
    return "hash:%s" % path


# ---------------------------------------------- virtual alias domains

ALIAS_TABLE = """\
# virtual(5): specific entries win over the catch-all
postmaster@example.net   carol
alice@example.net        alice
@example.net             bob
dave@example.net         demo, carol
someone@tonk.example     dongliang@example.test
lee@tonk.example         error:nouser No such user here
@tonk.example            %1@example.test
"""


@pytest.fixture
def valias(make_server):
    srv = make_server(start=False, users=("demo", "alice", "bob", "carol",
                                          "dongliang", "test"))
    table = build_map(srv, "virtual", ALIAS_TABLE)
    srv.write_config("virtual_alias_domains = example.net, tonk.example, "
                     "empty.example\n"
                     "virtual_alias_maps = %s\n"
                     "recipient_delimiter = +\n" % table)
    srv.start()
    return srv


def test_catch_all_and_specific_entries(valias):
    srv = valias
    srv.send(SENDER, ["anything@example.net", "postmaster@example.net",
                      "alice@example.net"],
             make_msg("va-1", sender=SENDER, to="anything@example.net"))
    bob = srv.wait_token("bob", "va-1")
    carol = srv.wait_token("carol", "va-1")
    alice = srv.wait_token("alice", "va-1")
    # Each got exactly one copy, addressed as the sender wrote it.
    assert len(bob) == len(carol) == len(alice) == 1
    assert header_values(bob[0], "X-Original-To") == ["anything@example.net"]
    assert header_values(carol[0], "X-Original-To") == [
        "postmaster@example.net"]
    # The catch-all did not take postmaster's or alice's mail.
    assert srv.with_token("bob", "va-1") == bob


def test_list_and_extension(valias):
    srv = valias
    srv.send(SENDER, ["dave@example.net", "bob+news@example.net"],
             make_msg("va-2", sender=SENDER))
    srv.wait_token("demo", "va-2")
    srv.wait_token("carol", "va-2")
    srv.wait_token("bob", "va-2")


def test_unknown_user_rejected_at_rcpt(valias):
    code, text = rcpt_reply(valias, "nobody@empty.example")
    assert code == 550, (code, text)
    assert text == ("5.1.1 <nobody@empty.example>: Recipient address "
                    "rejected: User unknown in virtual alias table"), text
    valias.wait_log(r"NOQUEUE: reject: RCPT from .*: 550 5\.1\.1 "
                    r"<nobody@empty\.example>: .*User unknown in virtual "
                    r"alias table")


def test_virtusertable_percent_one_and_error(valias):
    srv = valias
    # sendmail's "@domain %1@other" and a plain entry.
    srv.send(SENDER, ["test@tonk.example", "someone@tonk.example"],
             make_msg("va-3", sender=SENDER))
    srv.wait_token("test", "va-3")
    srv.wait_token("dongliang", "va-3")
    # "error:nouser text" rejects with that text.
    code, text = rcpt_reply(srv, "lee@tonk.example")
    assert code == 550, (code, text)
    assert text.endswith("<lee@tonk.example>: Recipient address rejected: "
                         "No such user here"), text
    assert text.startswith("5.1.1 ")


def test_table_change_takes_effect(valias):
    srv = valias
    build_map(srv, "virtual", ALIAS_TABLE.replace(
        "@example.net             bob", "@example.net             carol"))
    srv.send(SENDER, "changed@example.net", make_msg("va-4", sender=SENDER))
    srv.wait_token("carol", "va-4")
    assert srv.with_token("bob", "va-4") == []


# -------------------------------------------- virtual mailbox domains

def pop_messages(srv, user):
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=WAIT)
    try:
        p.user(user)
        p.pass_(PASSWORD)
        n = len(p.list()[1])
        return [b"\n".join(p.retr(i + 1)[1]) for i in range(n)]
    finally:
        p.quit()


def imap_subjects(srv, user):
    im = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=WAIT)
    try:
        typ, data = im.login(user, PASSWORD)
        assert typ == "OK", data
        typ, data = im.select("INBOX")
        assert typ == "OK", data
        typ, data = im.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        return sorted(parse(d[1])["Subject"] for d in data
                      if isinstance(d, tuple))
    finally:
        im.logout()


@pytest.fixture(params=["at-accept", "queue"])
def vmailbox(make_server, request):
    """Two virtual mailbox domains served from the passwd-file users
    bob@example.com, bob@example.org and alice@example.org; POP3 and IMAP
    on.  Parametrised: delivery at accept, or through the queue."""
    srv = make_server(start=False, pop3=True, imap=True)
    for u in ("bob@example.com", "bob@example.org", "alice@example.org"):
        srv.postern("user", "add", u, "-p", PASSWORD, check=True)
    srv.write_config(
        "virtual_mailbox_domains = example.com, example.org\n"
        "virtual_mailbox_maps = passwd-file:%s/users\n"
        "recipient_delimiter = +\n"
        "local_delivery_at_accept = %s\n"
        % (srv.dir, "yes" if request.param == "at-accept" else "no"))
    srv.start()
    return srv


def test_two_domains_separate_mailboxes(vmailbox):
    srv = vmailbox
    srv.send(SENDER, "bob@example.com",
             make_msg("vm-com", sender=SENDER, to="bob@example.com"))
    srv.send(SENDER, ["bob@example.org", "Alice+lists@example.org"],
             make_msg("vm-org", sender=SENDER, to="bob@example.org"))
    com = wait_for(lambda: os.listdir(
        srv.data / "home" / "bob@example.com" / "Maildir" / "new")
        if (srv.data / "home" / "bob@example.com" / "Maildir" /
            "new").exists() else None)
    assert len(com) == 1
    srv.wait_log(r"to=<bob@example\.org>, .*status=sent")
    srv.wait_log(r"to=<Alice\+lists@example\.org>, .*status=sent")
    org = os.listdir(srv.data / "home" / "bob@example.org" / "Maildir" /
                     "new")
    assert len(org) == 1
    # The mailbox POP3 and IMAP open for user@domain is the one mail
    # was delivered into, and only that one.
    msgs = pop_messages(srv, "bob@example.com")
    assert len(msgs) == 1 and b"vm-com" in msgs[0]
    assert header_values(msgs[0].replace(b"\r", b""), "Delivered-To") == [
        "bob@example.com"]
    assert imap_subjects(srv, "bob@example.org") == ["vm-org"]
    assert imap_subjects(srv, "alice@example.org") == ["vm-org"]
    # The plain local users have nothing of it.
    assert srv.messages("bob") == []


def test_unknown_virtual_user(vmailbox):
    srv = vmailbox
    code, text = rcpt_reply(srv, "nobody@example.com")
    assert code == 550, (code, text)
    assert "5.1.1 <nobody@example.com>: Recipient address rejected: User " \
        "unknown in virtual mailbox table" in text, text


def test_unknown_virtual_user_bounces_when_accepted(make_server):
    """With smtpd_reject_unlisted_recipient = no the message is taken and
    the delivery agent bounces it, as Postfix's virtual(8) does."""
    srv = make_server(start=False)
    srv.postern("user", "add", "bob@example.com", "-p", PASSWORD,
                check=True)
    srv.write_config("virtual_mailbox_domains = example.com\n"
                     "virtual_mailbox_maps = passwd-file:%s/users\n"
                     "smtpd_reject_unlisted_recipient = no\n" % srv.dir)
    srv.start()
    srv.send(SENDER, "ghost@example.com", make_msg("vm-ghost",
                                                    sender=SENDER))
    srv.wait_log(r"to=<ghost@example\.com>, .*dsn=5\.1\.1, "
                 r"status=bounced \(unknown user: \"ghost@example\.com\"\)")
    report = srv.wait_token("demo", "vm-ghost")[0]
    assert b"Undelivered Mail Returned to Sender" in report
    assert b"ghost@example.com" in report


@pytest.fixture
def vtable(make_server):
    """virtual_mailbox_maps as a table under virtual_mailbox_base, with a
    static uid: a Maildir entry, an mbox entry and a catch-all.  The
    passwd-file homes point at the same Maildirs, with mail_location
    maildir:~, so POP3 reads what was delivered."""
    srv = make_server(start=False, pop3=True)
    base = srv.mkdir(srv.dir / "vmail")
    srv.mkdir(base / "example.com")
    table = build_map(srv, "vmailbox",
                      "info@example.com   example.com/info/\n"
                      "sales@example.com  example.com/sales\n"
                      "@example.net       example.net/catchall/\n")
    srv.postern("user", "add", "info@example.com", "-p", PASSWORD,
                check=True)
    # Dovecot passwd-file: user:password:uid:gid:gecos:home:shell:extra
    users = []
    for line in (srv.dir / "users").read_text().splitlines():
        f = line.split(":")
        if f[0] == "info@example.com":
            f[5] = str(base / "example.com" / "info")
        users.append(":".join(f))
    srv.write(srv.dir / "users", "\n".join(users) + "\n")
    srv.write_config(
        "virtual_mailbox_domains = example.com, example.net\n"
        "virtual_mailbox_base = %s\n"
        "virtual_mailbox_maps = %s\n"
        "virtual_uid_maps = static:%d\n"
        "virtual_gid_maps = static:%d\n"
        "virtual_minimum_uid = 1\n"
        "mail_location = maildir:~\n" % (base, table, srv.uid, srv.gid))
    srv.start()
    srv.base = base
    return srv


def test_table_mailboxes_under_base(vtable):
    srv = vtable
    srv.send(SENDER, ["info@example.com", "sales@example.com",
                      "anyone@example.net"],
             make_msg("vt-1", sender=SENDER))
    info = srv.base / "example.com" / "info" / "new"
    catch = srv.base / "example.net" / "catchall" / "new"
    sales = srv.base / "example.com" / "sales"
    assert wait_for(lambda: info.exists() and len(os.listdir(info)) == 1)
    assert wait_for(lambda: catch.exists() and len(os.listdir(catch)) == 1)
    assert wait_for(lambda: sales.exists() and
                    b"vt-1" in sales.read_bytes())
    assert sales.read_bytes().startswith(b"From demo@example.test ")
    st = os.stat(info / os.listdir(info)[0])
    assert (st.st_uid, st.st_gid) == (srv.uid, srv.gid)
    msgs = pop_messages(srv, "info@example.com")
    assert len(msgs) == 1 and b"vt-1" in msgs[0]


def test_uid_below_minimum_is_deferred(make_server):
    srv = make_server(start=False)
    base = srv.mkdir(srv.dir / "vmail")
    table = build_map(srv, "vmailbox", "info@example.com example.com/i/\n")
    srv.write_config(
        "virtual_mailbox_domains = example.com\n"
        "virtual_mailbox_base = %s\n"
        "virtual_mailbox_maps = %s\n"
        "virtual_uid_maps = static:%d\n"
        "virtual_gid_maps = static:%d\n"
        "virtual_minimum_uid = %d\n" % (base, table, srv.uid, srv.gid,
                                        srv.uid + 1))
    srv.start()
    qid = srv.send(SENDER, "info@example.com", make_msg("vt-min",
                                                        sender=SENDER))
    srv.wait_log(r"%s: to=<info@example\.com>, .*status=deferred .*"
                 r"below virtual_minimum_uid" % qid)
    assert not (base / "example.com").exists()


@requires_root
def test_root_mode_virtual_mailbox_owned_by_virtual_uid(make_server,
                                                         root_users):
    """Root mode: the copy is written as the uid/gid of virtual_uid_maps,
    not as root; uid 0 is refused by virtual_minimum_uid."""
    alice, _ = root_users
    pw = pwd.getpwnam(alice)
    srv = make_server(start=False, root_mode=True, system_users=root_users)
    base = srv.dir / "vmail"
    base.mkdir()
    os.chown(base, pw.pw_uid, pw.pw_gid)
    table = build_map(srv, "vmailbox", "info@example.com example.com/info/\n"
                                       "root@example.com example.com/root/\n")
    srv.write_config(
        "virtual_mailbox_domains = example.com\n"
        "virtual_mailbox_base = %s\n"
        "virtual_mailbox_maps = %s\n"
        "virtual_uid_maps = inline:{ info@example.com=%d, "
        "root@example.com=0 }\n"
        "virtual_gid_maps = static:%d\n" % (base, table, pw.pw_uid,
                                            pw.pw_gid))
    srv.start()
    srv.send(SENDER, ["info@example.com", "root@example.com"],
             make_msg("vt-root", sender=SENDER))
    new = base / "example.com" / "info" / "new"
    assert wait_for(lambda: new.exists() and len(os.listdir(new)) == 1)
    for p in (base / "example.com", base / "example.com" / "info", new,
              new / os.listdir(new)[0]):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), p
    srv.wait_log(r"to=<root@example\.com>, .*status=deferred .*uid 0 .*"
                 r"below virtual_minimum_uid")
    assert not (base / "example.com" / "root").exists()
