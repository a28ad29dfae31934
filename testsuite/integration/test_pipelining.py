"""
RFC 2920 pipelining: a client sends whole groups of commands in one
write; the replies come back complete and in order, and every pipelined
transaction is delivered.
"""
import re

from conftest import body_of, header_values


def test_two_pipelined_transactions(server):
    raw = server.raw()
    raw.expect(220)
    raw.send("EHLO client.example.test\r\n"
             "MAIL FROM:<alice@example.test>\r\n"
             "RCPT TO:<demo@example.test>\r\n"
             "RCPT TO:<bob@example.test>\r\n"
             "DATA\r\n")
    code, lines = raw.reply()
    assert code == 250 and "PIPELINING" in lines, lines
    assert raw.reply() == (250, ["2.1.0 Ok"])
    assert raw.reply() == (250, ["2.1.5 Ok"])
    assert raw.reply() == (250, ["2.1.5 Ok"])
    assert raw.reply()[0] == 354
    # end of the first message, and the whole second transaction
    raw.send("Subject: pipelined-one\r\n\r\nfirst\r\n.\r\n"
             "MAIL FROM:<carol@example.test>\r\n"
             "RCPT TO:<nosuchuser@example.test>\r\n"
             "RCPT TO:<demo@example.test>\r\n"
             "DATA\r\n")
    code, lines = raw.reply()
    assert code == 250
    qid1 = re.fullmatch(r"2\.0\.0 Ok: queued as (\S+)", lines[0]).group(1)
    assert raw.reply() == (250, ["2.1.0 Ok"])
    code, lines = raw.reply()
    assert code == 550 and lines[0].startswith("5.1.1"), lines
    assert raw.reply() == (250, ["2.1.5 Ok"])
    assert raw.reply()[0] == 354
    raw.send("Subject: pipelined-two\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
    code, lines = raw.reply()
    assert code == 250
    qid2 = re.fullmatch(r"2\.0\.0 Ok: queued as (\S+)", lines[0]).group(1)
    assert qid1 != qid2
    assert raw.reply()[0] == 221
    assert raw.at_eof()

    demo = server.wait_messages("demo", 2)
    bob = server.wait_messages("bob", 1)
    server.wait_queue_empty()
    assert len(server.messages("demo")) == 2
    assert len(server.messages("bob")) == 1
    one = [m for m in demo if b"pipelined-one" in m]
    two = [m for m in demo if b"pipelined-two" in m]
    assert len(one) == 1 and len(two) == 1
    assert body_of(one[0]) == b"first\n"
    assert body_of(two[0]) == b"second\n"
    assert header_values(two[0], "Return-Path") == ["<carol@example.test>"]
    assert b"pipelined-one" in bob[0]


def test_ten_transactions_pipelined(server):
    """Ten transactions; each message end is written together with the
    next transaction's MAIL, RCPT and DATA (as Postfix's own client
    does)."""
    raw = server.raw()
    raw.expect(220)
    raw.expect(250, "EHLO client.example.test\r\n")
    group = ("MAIL FROM:<alice@example.test>\r\n"
             "RCPT TO:<bob@example.test>\r\n"
             "DATA\r\n")
    raw.send(group)
    ids = set()
    for i in range(10):
        assert raw.reply() == (250, ["2.1.0 Ok"]), i
        assert raw.reply() == (250, ["2.1.5 Ok"]), i
        assert raw.reply()[0] == 354, i
        nxt = group if i < 9 else "QUIT\r\n"
        raw.send("Subject: batch-%d\r\n\r\nmessage %d\r\n.\r\n" % (i, i) +
                 nxt)
        code, lines = raw.reply()
        assert code == 250 and "queued as" in lines[0], (i, lines)
        ids.add(lines[0])
    assert raw.reply()[0] == 221
    assert len(ids) == 10
    server.wait_messages("bob", 10)
    server.wait_queue_empty()
    msgs = server.messages("bob")
    assert sorted(header_values(m, "Subject")[0] for m in msgs) == \
        sorted("batch-%d" % i for i in range(10))
