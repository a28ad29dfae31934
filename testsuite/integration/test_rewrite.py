"""
Address rewriting as users see it in delivered mail: canonical_maps for
senders and recipients (envelope and headers), masquerading (the
sendmail tutorial's "dl@linux102.example.com shows as dl@163.com", in
Postfix's masquerade_domains form), recipient_delimiter, always_bcc,
sender_bcc_maps and recipient_bcc_maps.  Header rewriting keeps display
names, comments and folding, and applies only to mail from the clients
local_header_rewrite_clients names, as in Postfix.
"""
import pytest

from conftest import header_block, header_values, make_msg, parse

SENDER = "demo@example.test"


def build_map(srv, name, text):
    path = srv.dir / name
    srv.write(path, text)
    srv.postern("map", "build", "hash:%s" % path, check=True)
    return "hash:%s" % path


# ------------------------------------------------------------ canonical

@pytest.fixture
def canon(make_server):
    srv = make_server(start=False)
    sc = build_map(srv, "sender_canonical",
                   "demo@example.test     webmaster@example.test\n")
    cm = build_map(srv, "canonical",
                   "sales@example.test    carol@example.test\n"
                   "@old.example          @example.test\n")
    srv.write_config("sender_canonical_maps = %s\n"
                     "canonical_maps = %s\n"
                     # sales@ and old.example are in no user table.
                     "local_recipient_maps =\n"
                     "mydestination = $myhostname, localhost, $mydomain, "
                     "old.example\n" % (sc, cm))
    srv.start()
    return srv


def test_canonical_sender_envelope_and_headers(canon):
    srv = canon
    srv.send(SENDER, "bob@example.test",
             make_msg("cn-1", sender="Demo User <demo@example.test>",
                      to="bob@example.test",
                      extra=["Reply-To: demo@example.test (the demo)"]))
    m = srv.wait_token("bob", "cn-1")[0]
    assert header_values(m, "Return-Path") == ["<webmaster@example.test>"]
    assert header_values(m, "From") == ["Demo User <webmaster@example.test>"]
    assert header_values(m, "Reply-To") == [
        "webmaster@example.test (the demo)"]
    # Recipient headers do not use sender_canonical_maps.
    assert header_values(m, "To") == ["bob@example.test"]


def test_canonical_recipient_envelope_and_headers(canon):
    srv = canon
    srv.send("someone@elsewhere.example", ["sales@example.test",
                                           "alice@old.example"],
             make_msg("cn-2", sender="someone@elsewhere.example",
                      to="Sales Dept <sales@example.test>, "
                         "alice@old.example"))
    m = srv.wait_token("carol", "cn-2")[0]
    srv.wait_token("alice", "cn-2")
    assert header_values(m, "To") == [
        "Sales Dept <carol@example.test>, alice@example.test"]
    assert header_values(m, "X-Original-To") == ["sales@example.test"]


def test_folded_header_keeps_its_folding(canon):
    srv = canon
    text = ("From: someone@elsewhere.example\n"
            "To: \"Sales, Inc.\" (main line)\n"
            "  <sales@example.test>,\n"
            "\tbob@example.test\n"
            "Cc: =?UTF-8?B?6ZSA5ZSu?= <sales@example.test>\n"
            "Subject: cn-3\n\nbody\n")
    srv.send("someone@elsewhere.example", "bob@example.test", text)
    m = srv.wait_token("bob", "cn-3")[0]
    hb = header_block(m).decode()
    assert ("To: \"Sales, Inc.\" (main line)\n  <carol@example.test>,\n"
            "\tbob@example.test\n") in hb, hb
    assert "Cc: =?UTF-8?B?6ZSA5ZSu?= <carol@example.test>\n" in hb, hb


def test_headers_of_remote_clients_stay(make_server):
    """Postfix: header addresses are rewritten only for the clients of
    local_header_rewrite_clients (permit_inet_interfaces: this host)
    unless remote_header_rewrite_domain is set; the envelope always."""
    srv = make_server(start=False)
    sc = build_map(srv, "sender_canonical",
                   "demo@example.test webmaster@example.test\n")
    srv.write_config("sender_canonical_maps = %s\n"
                     "local_header_rewrite_clients = "
                     "permit_sasl_authenticated\n" % sc)
    srv.start()
    srv.send(SENDER, "bob@example.test",
             make_msg("cn-4", sender=SENDER, to="bob@example.test"))
    m = srv.wait_token("bob", "cn-4")[0]
    assert header_values(m, "Return-Path") == ["<webmaster@example.test>"]
    assert header_values(m, "From") == ["demo@example.test"]
    srv.write_config("sender_canonical_maps = %s\n"
                     "local_header_rewrite_clients = "
                     "permit_sasl_authenticated\n"
                     "remote_header_rewrite_domain = example.test\n" % sc)
    srv.postern("reload", check=True)
    srv.wait_log(r"smtpd\[\d+\]: reload: configuration")
    srv.send(SENDER, "bob@example.test",
             make_msg("cn-5", sender=SENDER, to="bob@example.test"))
    m = srv.wait_token("bob", "cn-5")[0]
    assert header_values(m, "From") == ["webmaster@example.test"]


# ---------------------------------------------------------- masquerade

@pytest.fixture
def masq(make_server):
    srv = make_server(start=False, users=("demo", "bob", "root", "dl"))
    srv.write_config("masquerade_domains = !sub.example.test, example.test\n"
                     "masquerade_exceptions = root\n"
                     "mydestination = $myhostname, localhost, $mydomain, "
                     "linux102.example.test\n")
    srv.start()
    return srv


def test_masquerade_sender_and_headers(masq):
    srv = masq
    # The sendmail tutorial: dl@linux102... shows as dl@<the domain>.
    srv.send("dl@linux102.example.test", "bob@mail.example.test",
             make_msg("mq-1", sender="dl@linux102.example.test",
                      to="Bob <bob@mail.example.test>",
                      extra=["Cc: x@host.sub.example.test, "
                             "root@mail.example.test"]))
    m = srv.wait_token("bob", "mq-1")[0]
    assert header_values(m, "Return-Path") == ["<dl@example.test>"]
    assert header_values(m, "From") == ["dl@example.test"]
    assert header_values(m, "To") == ["Bob <bob@example.test>"]
    # "!sub.example.test" and masquerade_exceptions leave these alone.
    assert header_values(m, "Cc") == [
        "x@host.sub.example.test, root@mail.example.test"]
    # The envelope recipient is not masqueraded (masquerade_classes).
    assert header_values(m, "Delivered-To") == ["bob@mail.example.test"]


def test_masquerade_exception_sender(masq):
    srv = masq
    srv.send("root@mail.example.test", "bob@example.test",
             make_msg("mq-2", sender="root@mail.example.test"))
    m = srv.wait_token("bob", "mq-2")[0]
    assert header_values(m, "Return-Path") == ["<root@mail.example.test>"]
    assert header_values(m, "From") == ["root@mail.example.test"]


# ------------------------------------------------- recipient_delimiter

def test_recipient_delimiter(make_server):
    srv = make_server(start=False)
    va = build_map(srv, "virtual", "dave@example.net bob\n")
    srv.write_config("recipient_delimiter = +\n"
                     "virtual_alias_domains = example.net\n"
                     "virtual_alias_maps = %s\n" % va)
    srv.start()
    srv.send(SENDER, ["bob+tag@example.test", "dave+lists@example.net"],
             make_msg("rd-1", sender=SENDER))
    msgs = srv.wait_token("bob", "rd-1", n=2)
    tos = sorted(header_values(m, "Delivered-To")[0] for m in msgs)
    # bob+tag stays in Delivered-To; dave+lists became bob+lists.
    assert tos == ["bob+lists@mail.example.test", "bob+tag@example.test"]


# ----------------------------------------------------------------- BCC

def test_always_bcc_and_bcc_maps(make_server):
    srv = make_server(start=False)
    sb = build_map(srv, "sender_bcc", "demo@example.test alice\n")
    rb = build_map(srv, "recipient_bcc",
                   "bob@example.test carol@example.test\n")
    srv.write_config("always_bcc = carol@example.test\n"
                     "sender_bcc_maps = %s\n"
                     "recipient_bcc_maps = %s\n" % (sb, rb))
    srv.start()
    qid = srv.send(SENDER, "bob@example.test",
                   make_msg("bcc-1", sender=SENDER, to="bob@example.test"))
    bob = srv.wait_token("bob", "bcc-1")[0]
    srv.wait_token("alice", "bcc-1")
    srv.wait_token("carol", "bcc-1")
    srv.wait_log(r"%s: from=<demo@example\.test>, size=\d+, nrcpt=3" % qid)
    # One copy for carol (always_bcc and recipient_bcc_maps agree).
    assert len(srv.with_token("carol", "bcc-1")) == 1
    # Nothing in bob's copy tells of the blind copies.
    hb = header_block(bob).decode()
    assert "carol" not in hb and "alice" not in hb, hb
    assert "for <bob@example.test>" in hb


def test_bcc_copy_never_bounces_to_sender(make_server):
    srv = make_server(start=False)
    srv.write_config("always_bcc = nosuchuser@example.test\n")
    srv.start()
    qid = srv.send(SENDER, "bob@example.test",
                   make_msg("bcc-2", sender=SENDER))
    srv.wait_token("bob", "bcc-2")
    srv.wait_log(r"%s: to=<nosuchuser@example\.test>.*status=bounced" % qid)
    srv.wait_log(r"%s: removed" % qid)
    # NOTIFY=NEVER (postconf(5) always_bcc): no report to the sender.
    assert not [m for m in srv.messages("demo")
                if b"Undelivered Mail" in m]


def test_huge_address_headers_are_bounded_not_lost(canon):
    """A folded To: of 1500 addresses: the first REWRITE_MAX_HEADER_ADDRS
    (1000) are rewritten, the rest kept; one of 6000 (over 100 KiB held
    back) goes out as it came.  Nothing is lost either way."""
    srv = canon
    for n, tag in ((1500, "big-1"), (6000, "big-2")):
        to = ",\n ".join("u%d@old.example" % i for i in range(n))
        srv.send("someone@elsewhere.example", "bob@example.test",
                 "From: someone@elsewhere.example\nTo: %s\nSubject: %s\n\n"
                 "body\n" % (to, tag))
        m = srv.wait_token("bob", tag)[0]
        value = header_values(m, "To")[0]
        addrs = value.split(", ")
        assert len(addrs) == n
        changed = sum(1 for a in addrs if a.endswith("@example.test"))
        if n == 1500:
            assert changed == 1000
            assert addrs[0] == "u0@example.test"
            assert addrs[-1] == "u1499@old.example"
        else:
            assert changed == 0
        assert body_text(m) == "body\n"


def body_text(raw):
    return raw.split(b"\n\n", 1)[1].decode()
