"""
The queue as the admin sees it: mailq (Postfix format) and postern queue
list/show/hold/release/delete/flush, with qmgr running and without.
Messages to a remote domain stay deferred (the retry transport stands in
for an unreachable world), which gives us queue entries to look at.
"""
import re

import pytest

from conftest import REMOTE_DEFERRED, make_msg


@pytest.fixture
def server(make_server):
    return make_server(conf=REMOTE_DEFERRED)

HEADER = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
ARRIVAL = r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d"


def queued(srv, subject, rcpt="far@remote.example",
           sender="alice@example.test"):
    qid = srv.send(sender, rcpt, make_msg(subject, "queued body\n"))
    srv.wait_deferred(qid)
    return qid


def entry(out, qid):
    """The lines of qid's entry in mailq output (up to the blank line)."""
    lines = out.splitlines()
    for i, l in enumerate(lines):
        if re.match(r"^%s[*!]?\s" % qid, l):
            block = [l]
            for m in lines[i + 1:]:
                if not m.strip():
                    break
                block.append(m)
            return block
    raise AssertionError("%s not in mailq output:\n%s" % (qid, out))


def test_empty_queue(server):
    for r in (server.mailq(), server.postern("queue", "list"),
              server.postern("queue")):
        assert r.returncode == 0, r.err
        assert r.out == "Mail queue is empty\n", r.out


def test_deferred_message_in_postfix_format(server):
    qid = queued(server, "format-check")
    out = server.mailq().out
    lines = out.splitlines()
    assert lines[0] == HEADER, out
    block = entry(out, qid)
    m = re.fullmatch(r"%s\s+(\d+) (%s)  alice@example\.test" %
                     (qid, ARRIVAL), block[0])
    assert m, block
    assert int(m.group(1)) > len("queued body\n")
    # the deferral reason in parentheses, then the pending recipient
    assert re.fullmatch(r"\s*\(.+\)", block[1]), block
    assert "remote delivery" in block[1], block
    assert re.fullmatch(r"\s+far@remote\.example", block[2]), block
    assert len(block) == 3, block
    assert re.fullmatch(r"-- [1-9]\d* Kbytes in 1 Request\.", lines[-1]), lines


def test_two_messages_counted(server):
    a = queued(server, "first-q")
    b = queued(server, "second-q", sender="<>")
    out = server.mailq().out
    entry(out, a)
    blk = entry(out, b)
    assert blk[0].endswith("MAILER-DAEMON"), blk
    assert re.search(r"^-- \d+ Kbytes in 2 Requests\.$", out, re.M), out


def test_show(server):
    qid = queued(server, "show-me")
    r = server.postern("queue", "show", qid)
    assert r.returncode == 0, r.err
    for text in ("alice@example.test", "far@remote.example",
                 "Subject: show-me", "queued body"):
        assert text in r.out, (text, r.out)
    r = server.postern("queue", "show", "NOSUCHID0000000000")
    assert r.returncode != 0


def test_hold_and_release(server):
    qid = queued(server, "hold-me")
    r = server.postern("queue", "hold", qid)
    assert r.returncode == 0, r.err
    assert entry(server.mailq().out, qid)[0].startswith(qid + "!")
    assert (server.spool / "hold" / qid).exists()
    r = server.postern("queue", "release", qid)
    assert r.returncode == 0, r.err
    line = entry(server.mailq().out, qid)[0]
    assert not line.startswith(qid + "!"), line
    assert not (server.spool / "hold" / qid).exists()
    assert ((server.spool / "deferred" / qid).exists() or
            (server.spool / "incoming" / qid).exists())


def test_delete(server):
    keep = queued(server, "keep-me")
    gone = queued(server, "delete-me")
    r = server.postern("queue", "delete", gone)
    assert r.returncode == 0, r.err
    out = server.mailq().out
    assert gone not in out
    entry(out, keep)
    r = server.postern("queue", "delete", "ALL")
    assert r.returncode == 0, r.err
    assert server.mailq().out == "Mail queue is empty\n"
    assert server.queue_files() == []


def test_hold_all_release_all(server):
    ids = [queued(server, "all-%d" % i) for i in range(2)]
    assert server.postern("queue", "hold", "ALL").returncode == 0
    out = server.mailq().out
    for qid in ids:
        assert entry(out, qid)[0].startswith(qid + "!"), out
    assert server.postern("queue", "release", "ALL").returncode == 0
    out = server.mailq().out
    for qid in ids:
        assert not entry(out, qid)[0].startswith(qid + "!"), out


def test_flush_retries_deferred_mail(server):
    qid = queued(server, "flush-me")
    pattern = r"%s: to=<far@remote\.example>.*status=deferred" % qid
    server.wait_log(pattern, count=1)
    r = server.postern("queue", "flush")
    assert r.returncode == 0, r.err
    server.wait_log(pattern, count=2)
    r = server.sendmail("-q")
    assert r.returncode == 0, r.err
    server.wait_log(pattern, count=3)


def test_queue_commands_without_qmgr(server):
    keep = queued(server, "offline-keep")
    gone = queued(server, "offline-gone")
    server.stop()
    out = server.postern("queue", "list").out
    entry(out, keep)
    entry(out, gone)
    r = server.postern("queue", "delete", gone)
    assert r.returncode == 0, r.err
    r = server.postern("queue", "hold", keep)
    assert r.returncode == 0, r.err
    out = server.postern("queue", "list").out
    assert gone not in out
    assert entry(out, keep)[0].startswith(keep + "!")
