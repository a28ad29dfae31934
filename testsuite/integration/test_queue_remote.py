"""
Remote delivery as the queue sees it: routing ($relayhost,
$transport_maps), retries of 4xx answers and broken connections
(exactly one copy in the end), bounces of 5xx answers (RFC 3464 reports
in the sender's mailbox), no bounce for the null sender, delay warnings,
`postern queue flush`, the per-destination concurrency limit, recipient
batching and dead destinations.  The remote side is a scripted SMTP peer
on loopback (fakesmtp.py); Postern's own smtp agent talks to it.
"""
import email
import email.policy
import os
import re
import signal
import socket
import threading
import time

import pytest

from conftest import make_msg, parse, wait_for
from fakesmtp import FakeSMTP

SENDER = "alice@example.test"


def conf(*lines, relay_port=None):
    out = list(lines)
    if relay_port is not None:
        out.append("relayhost = [127.0.0.1]:%d" % relay_port)
    return "\n".join(out) + "\n"


def relay_re(port):
    return r"relay=[^,\s]*\[127\.0\.0\.1\]:%d" % port


def delivery_status(raw):
    """(per-message fields, [per-recipient fields]) of a DSN's
    message/delivery-status part, field names lower case."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    ds = [p for p in parts if p.get_content_type() ==
          "message/delivery-status"]
    assert len(ds) == 1, [p.get_content_type() for p in parts]
    blocks = []
    for sub in ds[0].get_payload():
        blocks.append({k.lower(): v for k, v in sub.items()})
    return blocks[0], blocks[1:]


def returned_part(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    parts = msg.get_payload()
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    return parts[2]


def flush(srv):
    r = srv.postern("queue", "flush")
    assert r.returncode == 0, r.err


def test_deferred_then_sent_once_after_flush(make_server):
    with FakeSMTP(replies={"RCPT": ["451 4.3.0 Try again later",
                                    "250 2.1.5 Ok"]}) as peer:
        srv = make_server(conf=conf(relay_port=peer.port))
        qid = srv.send(SENDER, "bob@remote.example",
                       make_msg("retry-me", "body of retry-me\n"))
        lines = srv.wait_log(r"%s: to=<bob@remote\.example>, .*"
                             r"status=deferred" % qid)
        assert re.search(relay_re(peer.port), lines[0]), lines[0]
        assert "451 4.3.0 Try again later" in lines[0], lines[0]
        srv.wait_deferred(qid)
        assert peer.transactions == []
        flush(srv)
        sent = srv.wait_log(r"%s: to=<bob@remote\.example>, .*status=sent"
                            % qid)
        # Postfix's line: relay=host[ip]:port, delay, delays=a/b/c/d, dsn
        assert re.search(
            r"%s: to=<bob@remote\.example>, %s, delay=[\d.]+, "
            r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, "
            r"status=sent \(.*250.*\)" % (qid, relay_re(peer.port)),
            sent[0]), sent[0]
        srv.wait_queue_empty()
        txs = peer.wait_transactions(1)
        time.sleep(1)
        assert len(peer.transactions) == 1, peer.transactions
        assert txs[0].mail_from == SENDER
        assert txs[0].rcpts == ["bob@remote.example"]
        assert b"Subject: retry-me" in txs[0].data
        assert b"body of retry-me" in txs[0].data
        log = srv.log()
        assert log.index("status=deferred") < log.index("status=sent")
        assert len(srv.log_lines(r"%s: to=<bob@remote\.example>.*"
                                 r"status=sent" % qid)) == 1


def test_5xx_bounces_to_sender_with_dsn(make_server):
    with FakeSMTP(replies={"RCPT": "550 5.1.1 <bob@remote.example>: "
                                   "Recipient address rejected: "
                                   "User unknown"}) as peer:
        srv = make_server(conf=conf(relay_port=peer.port))
        qid = srv.send(SENDER, "bob@remote.example",
                       make_msg("bounce-me", "body of bounce-me\n",
                                sender=SENDER, to="bob@remote.example",
                                extra=["X-Custom: keep-me"]))
        line = srv.wait_log(r"%s: to=<bob@remote\.example>, .*"
                            r"status=bounced" % qid)[0]
        assert "dsn=5.1.1" in line, line
        assert re.search(relay_re(peer.port), line), line
        raws = srv.wait_messages("alice", 1)
        srv.wait_queue_empty()
        assert len(raws) == 1
        raw = raws[0]
        msg = parse(raw)
        assert msg["Subject"] == "Undelivered Mail Returned to Sender"
        assert "MAILER-DAEMON" in msg["From"]
        assert msg["Auto-Submitted"] == "auto-replied"
        per_msg, rcpts = delivery_status(raw)
        assert per_msg["reporting-mta"] == "dns; mail.example.test"
        assert "arrival-date" in per_msg
        assert len(rcpts) == 1
        r = rcpts[0]
        assert r["final-recipient"] == "rfc822; bob@remote.example"
        assert r["action"] == "failed"
        assert r["status"] == "5.1.1"
        assert r["remote-mta"].startswith("dns; ")
        assert r["diagnostic-code"].startswith("smtp; 550 5.1.1"), r
        assert "User unknown" in r["diagnostic-code"]
        # the original message comes back, its headers intact
        orig = returned_part(raw)
        text = orig.as_bytes()
        assert b"Subject: bounce-me" in text
        assert b"X-Custom: keep-me" in text
        # the human-readable part names the address and the reason
        human = msg.get_payload()[0].get_payload()
        assert "<bob@remote.example>" in human
        assert "User unknown" in human


def test_bounce_to_remote_sender_goes_out_by_smtp(make_server):
    """The notice for a remote sender is a queued message like any other:
    routed to the relay host, with the null sender."""
    def rcpt(addr):
        if addr == "bad@remote.example":
            return "550 5.1.1 <%s>: no such user" % addr
        return "250 2.1.5 Ok"

    with FakeSMTP(replies={"RCPT": rcpt}) as peer:
        srv = make_server(conf=conf(relay_port=peer.port))
        qid = srv.send("someone@sender.example", "bad@remote.example",
                       make_msg("bounce-far", "far away\n"))
        srv.wait_log(r"%s: to=<bad@remote\.example>, .*status=bounced" % qid)
        txs = peer.wait_transactions(1)
        srv.wait_queue_empty()
        assert txs[0].mail_from == ""
        assert txs[0].rcpts == ["someone@sender.example"]
        raw = txs[0].data.replace(b"\r\n", b"\n")
        _, rcpts = delivery_status(raw)
        assert rcpts[0]["final-recipient"] == "rfc822; bad@remote.example"
        assert rcpts[0]["status"] == "5.1.1"
        assert b"Subject: bounce-far" in returned_part(raw).as_bytes()
        srv.wait_log(r"to=<someone@sender\.example>, %s, .*status=sent"
                     % relay_re(peer.port))


def test_one_of_two_recipients_rejected(make_server):
    def rcpt(addr):
        if addr.startswith("bad"):
            return "550 5.1.1 <%s>: no such user" % addr
        return "250 2.1.5 Ok"

    with FakeSMTP(replies={"RCPT": rcpt}) as peer:
        srv = make_server(conf=conf(relay_port=peer.port))
        qid = srv.send(SENDER, ["good@remote.example", "bad@remote.example"],
                       make_msg("half", "half of it\n"))
        srv.wait_log(r"%s: to=<good@remote\.example>, .*status=sent" % qid)
        srv.wait_log(r"%s: to=<bad@remote\.example>, .*status=bounced" % qid)
        raws = srv.wait_messages("alice", 1)
        srv.wait_queue_empty()
        txs = peer.wait_transactions(1)
        time.sleep(0.5)
        assert len(peer.transactions) == 1
        assert txs[0].rcpts == ["good@remote.example"]
        assert len(srv.messages("alice")) == 1
        _, rcpts = delivery_status(raws[0])
        assert [r["final-recipient"] for r in rcpts] == [
            "rfc822; bad@remote.example"]


def test_dropped_connection_mid_data_is_retried(make_server):
    with FakeSMTP(replies={"BODY": ["DROP", None]}) as peer:
        srv = make_server(conf=conf(relay_port=peer.port))
        qid = srv.send(SENDER, "carl@remote.example",
                       make_msg("drop-me", "x" * 20000 + "\n"))
        line = srv.wait_log(r"%s: to=<carl@remote\.example>, .*"
                            r"status=deferred" % qid)[0]
        assert "dsn=4." in line, line
        srv.wait_deferred(qid)
        assert peer.transactions == []
        flush(srv)
        srv.wait_log(r"%s: to=<carl@remote\.example>, .*status=sent" % qid)
        srv.wait_queue_empty()
        txs = peer.wait_transactions(1)
        time.sleep(1)
        assert len(peer.transactions) == 1
        assert b"Subject: drop-me" in txs[0].data
        assert txs[0].data.count(b"x" * 20000) == 1


def test_agent_lost_mid_delivery_is_retried(make_server):
    """The smtp agent dies while it sends the message: qmgr defers the
    recipient (never loses it), and the restarted agent delivers it."""
    stalled = threading.Event()

    def stall(_):
        stalled.set()
        time.sleep(4)       # the agent is killed meanwhile

    # The message is larger than the agent's socket buffers and the
    # peer's window together: killed agent, unfinished transfer.
    with FakeSMTP(replies={"BODY": [stall, None]}, rcvbuf=65536) as peer:
        srv = make_server(conf=conf("message_size_limit = 30000000",
                                    relay_port=peer.port))
        body = ("y" * 76 + "\n") * 110000
        qid = srv.send(SENDER, "dave@remote.example",
                       make_msg("agent-dies", body))
        assert stalled.wait(20), srv.log_tail()
        os.kill(srv.service_pid("smtp"), signal.SIGKILL)
        srv.wait_log(r"%s: to=<dave@remote\.example>, relay=none, .*"
                     r"status=deferred \(lost connection with smtp delivery "
                     r"agent\)" % qid)
        srv.wait_deferred(qid)
        srv.wait_log(r"restarted smtp")
        time.sleep(4)       # the stalled session ends without a message
        assert peer.transactions == []
        flush(srv)
        srv.wait_log(r"%s: to=<dave@remote\.example>, .*status=sent" % qid)
        srv.wait_queue_empty()
        txs = peer.wait_transactions(1)
        time.sleep(0.5)
        assert len(peer.transactions) == 1
        assert txs[0].data.count(b"y" * 76) == 110000


def test_null_sender_never_bounces(make_server):
    with FakeSMTP(replies={"RCPT": "550 5.1.1 no such user"}) as peer:
        srv = make_server(conf=conf(relay_port=peer.port))
        qid = srv.send("<>", "bob@remote.example",
                       make_msg("from-nobody", "a notice\n"))
        srv.wait_log(r"%s: to=<bob@remote\.example>, .*status=bounced" % qid)
        srv.wait_log(r"%s: undeliverable mail from <> discarded" % qid)
        srv.wait_queue_empty()
        time.sleep(1)
        for user in ("alice", "demo", "bob"):
            assert srv.messages(user) == [], user
        assert not srv.log_lines(r"%s: sender non-delivery notification"
                                 % qid)


def test_transport_maps(make_server):
    with FakeSMTP() as peer:
        tmap = ("transport_maps = inline:{ "
                "{ err.example = error:5.7.1 no mail for err.example }, "
                "{ gone.example = discard:silently dropped }, "
                "here.example=local:, "
                "peer.example=smtp:[127.0.0.1]:%d }" % peer.port)
        # no relayhost: the default transport would need DNS
        srv = make_server(conf=conf(tmap))
        q1 = srv.send(SENDER, "x@err.example", make_msg("to-err", "e\n"))
        q2 = srv.send(SENDER, "y@gone.example", make_msg("to-gone", "g\n"))
        q3 = srv.send(SENDER, "bob@here.example", make_msg("to-here", "h\n"))
        q4 = srv.send(SENDER, "z@peer.example", make_msg("to-peer", "p\n"))

        line = srv.wait_log(r"%s: to=<x@err\.example>, " % q1)[0]
        assert re.search(r"relay=none, .*dsn=5\.7\.1, status=bounced "
                         r"\(no mail for err\.example\)", line), line
        line = srv.wait_log(r"%s: to=<y@gone\.example>, " % q2)[0]
        assert re.search(r"relay=none, .*dsn=2\.0\.0, status=sent "
                         r"\(silently dropped\)", line), line
        srv.wait_token("bob", "to-here")
        line = srv.wait_log(r"%s: to=<bob@here\.example>, .*status=sent"
                            % q3)[0]
        assert "relay=local" in line, line
        txs = peer.wait_transactions(1)
        srv.wait_log(r"%s: to=<z@peer\.example>, %s, .*status=sent" %
                     (q4, relay_re(peer.port)))
        assert txs[0].rcpts == ["z@peer.example"]
        # the error: bounce reaches the sender, the discard does not
        raws = srv.wait_token("alice", "to-err")
        srv.wait_queue_empty()
        assert len(srv.messages("alice")) == 1
        _, rcpts = delivery_status(raws[0])
        assert rcpts[0]["status"] == "5.7.1"
        assert "no mail for err.example" in rcpts[0]["diagnostic-code"]
        assert len(peer.transactions) == 1


def test_transport_maps_for_local_domain_at_accept(make_server):
    """Delivery at accept follows $transport_maps: a recipient of a local
    domain routed to smtp:[host]:port goes to that host, one routed to
    error: bounces, and neither lands in a local mailbox."""
    with FakeSMTP() as peer:
        tmap = ("transport_maps = inline:{ "
                "bob@example.test=smtp:[127.0.0.1]:%d, "
                "{ demo@example.test = error:5.7.1 demo is away } }"
                % peer.port)
        srv = make_server(conf=conf(tmap))
        q1 = srv.send(SENDER, "bob@example.test", make_msg("to-bob", "b\n"))
        q2 = srv.send(SENDER, "demo@example.test",
                      make_msg("to-demo", "d\n"))
        txs = peer.wait_transactions(1)
        assert txs[0].rcpts == ["bob@example.test"]
        srv.wait_log(r"%s: to=<bob@example\.test>, %s, .*status=sent" %
                     (q1, relay_re(peer.port)))
        line = srv.wait_log(r"%s: to=<demo@example\.test>, " % q2)[0]
        assert re.search(r"relay=none, .*dsn=5\.7\.1, status=bounced "
                         r"\(demo is away\)", line), line
        srv.wait_token("alice", "to-demo")
        srv.wait_queue_empty()
        assert srv.messages("bob") == []
        assert srv.messages("demo") == []


def build_map(srv, name, text):
    path = srv.dir / name
    srv.write(path, text)
    srv.postern("map", "build", "hash:%s" % path, check=True)
    return "hash:%s" % path


def test_hash_tables_in_qmgr_and_smtp_closed_at_exit(make_server):
    """Berkeley DB tables for $mydestination, $transport_maps and
    $smtp_generic_maps, used by qmgr, local and the smtp agent's threads:
    they work, and the services stop without a sanitizer report (open
    handles at exit are reported as leaks in sanitizer builds)."""
    with FakeSMTP() as peer:
        srv = make_server(start=False)
        dest = build_map(srv, "mydest", "example.test OK\n")
        tmap = build_map(srv, "transport",
                         "peer.example smtp:[127.0.0.1]:%d\n" % peer.port)
        gmap = build_map(srv, "generic",
                         "alice@example.test alice@public.example\n")
        srv.write_config(conf("mydestination = localhost, %s" % dest,
                              "transport_maps = %s" % tmap,
                              "smtp_generic_maps = %s" % gmap))
        srv.start()
        srv.send(SENDER, ["bob@example.test", "z@peer.example"],
                 make_msg("hash-tables", "h\n", sender=SENDER))
        srv.wait_token("bob", "hash-tables")
        txs = peer.wait_transactions(1)
        assert txs[0].mail_from == "alice@public.example"
        assert txs[0].rcpts == ["z@peer.example"]
        assert b"From: alice@public.example" in txs[0].data
        srv.wait_queue_empty()
        srv.stop()
        bad = srv.log_lines(r"Sanitizer|runtime error")
        assert bad == [], bad


def test_delay_warning_for_remote_deferral(make_server):
    with FakeSMTP(replies={"RCPT": "450 4.2.0 Mailbox busy"}) as peer:
        srv = make_server(conf=conf("delay_warning_time = 1s",
                                    "minimal_backoff_time = 1s",
                                    "maximal_backoff_time = 2s",
                                    relay_port=peer.port))
        qid = srv.send(SENDER, "slow@remote.example",
                       make_msg("slow-one", "slow\n"))
        srv.wait_log(r"%s: to=<slow@remote\.example>, .*status=deferred"
                     % qid)
        # the next attempt (due after 1s) happens when the message is
        # older than delay_warning_time: the sender hears about it
        raws = srv.wait_messages("alice", 1, timeout=30)
        srv.wait_log(r"%s: sender delay notification" % qid)
        msg = parse(raws[0])
        assert msg["Subject"] == "Delayed Mail (still being retried)"
        _, rcpts = delivery_status(raws[0])
        assert rcpts[0]["action"] == "delayed"
        assert rcpts[0]["status"] == "4.2.0"
        assert "will-retry-until" in rcpts[0]
        assert "Mailbox busy" in rcpts[0]["diagnostic-code"]
        human = msg.get_payload()[0].get_payload()
        assert "not been delivered after 1 second(s)" in human, human
        assert "<slow@remote.example>" in human
        # once only, however often it is retried
        flush(srv)
        srv.wait_log(r"%s: to=<slow@remote\.example>, .*status=deferred"
                     % qid, count=3)
        time.sleep(1)
        assert len(srv.messages("alice")) == 1
        assert len(srv.log_lines(r"%s: sender delay notification" % qid)) == 1
        assert peer.transactions == []


def test_queue_lifetime_bounces_remote_deferral(make_server):
    """A message still deferred after maximal_queue_lifetime goes back
    to the sender: an RFC 3464 report with the last reason and the
    original headers; the remote server never got it."""
    with FakeSMTP(replies={"RCPT": "450 4.2.0 Mailbox busy"}) as peer:
        srv = make_server(conf=conf("maximal_queue_lifetime = 2s",
                                    "minimal_backoff_time = 1s",
                                    "maximal_backoff_time = 1s",
                                    relay_port=peer.port))
        qid = srv.send(SENDER, "late@remote.example",
                       make_msg("too-late", "late\n",
                                extra=["X-Custom: keep-me"]))
        srv.wait_log(r"%s: to=<late@remote\.example>, .*status=deferred"
                     % qid)
        line = srv.wait_log(r"%s: to=<late@remote\.example>, .*"
                            r"status=bounced" % qid, timeout=30)[0]
        assert re.search(r"%s, delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/"
                         r"[0-9.]+/[0-9.]+, dsn=5\.4\.7, status=bounced "
                         r"\(message expired: .*Mailbox busy"
                         % relay_re(peer.port), line), line
        raws = srv.wait_messages("alice", 1, timeout=30)
        srv.wait_queue_empty()
        _, rcpts = delivery_status(raws[0])
        assert rcpts[0]["action"] == "failed"
        assert rcpts[0]["status"] == "5.4.7"
        assert "Mailbox busy" in rcpts[0]["diagnostic-code"]
        text = returned_part(raws[0]).as_bytes()
        assert b"Subject: too-late" in text
        assert b"X-Custom: keep-me" in text
        assert peer.transactions == []


def test_destination_concurrency_limit(make_server):
    with FakeSMTP(eod_delay=0.3) as peer:
        srv = make_server(conf=conf(
            "smtp_destination_concurrency_limit = 2",
            relay_port=peer.port))
        with srv.smtp() as s:
            for i in range(30):
                refused = s.sendmail(SENDER, ["r%d@remote.example" % i],
                                     make_msg("conc-%d" % i, "n %d\n" % i))
                assert refused == {}
        txs = peer.wait_transactions(30, timeout=60)
        srv.wait_queue_empty(timeout=60)
        assert sorted(t.rcpts[0] for t in txs) == sorted(
            "r%d@remote.example" % i for i in range(30))
        assert peer.max_concurrent <= 2, peer.max_concurrent
        assert len(srv.log_lines(r"to=<r\d+@remote\.example>, .*"
                                 r"status=sent")) == 30


def test_recipient_limit_splits_sends(make_server):
    with FakeSMTP() as peer:
        srv = make_server(conf=conf("smtp_destination_recipient_limit = 50",
                                    relay_port=peer.port))
        rcpts = ["u%02d@remote.example" % i for i in range(60)]
        qid = srv.send(SENDER, rcpts, make_msg("many", "many\n"))
        txs = peer.wait_transactions(2)
        srv.wait_queue_empty()
        time.sleep(0.5)
        assert len(peer.transactions) == 2
        assert sorted(len(t.rcpts) for t in txs) == [10, 50]
        assert sorted(r for t in txs for r in t.rcpts) == rcpts
        assert len(srv.log_lines(r"%s: to=<u\d\d@remote\.example>, "
                                 r".*status=sent" % qid)) == 60


def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_destination_defers_without_connecting(make_server):
    port = closed_port()
    srv = make_server(conf=conf(relay_port=port))
    q1 = srv.send(SENDER, "a@remote.example", make_msg("dead-1", "1\n"))
    line = srv.wait_log(r"%s: to=<a@remote\.example>, .*status=deferred"
                        % q1)[0]
    assert "relay=none" in line, line
    srv.wait_deferred(q1)
    # the next message for that next hop is deferred at once, with the
    # reason of the failure, and no new connection attempt
    q2 = srv.send(SENDER, "b@remote.example", make_msg("dead-2", "2\n"))
    line = srv.wait_log(r"%s: to=<b@remote\.example>, .*status=deferred"
                        % q2)[0]
    assert "delivery temporarily suspended: " in line, line
    srv.wait_deferred(q2)
    # the destination comes back; a flush delivers both
    with FakeSMTP(port=port) as peer:
        flush(srv)
        txs = peer.wait_transactions(2)
        srv.wait_queue_empty()
        assert sorted(t.rcpts[0] for t in txs) == ["a@remote.example",
                                                   "b@remote.example"]
