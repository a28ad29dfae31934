"""
SMTP smuggling (DESIGN §9): only <CR><LF>.<CR><LF> ends DATA.  A message
whose content holds "end of data" look-alikes made with bare LF or bare
CR, each followed by a complete SMTP transaction to another recipient,
must arrive as ONE message to the real recipient, with that text as
content; the smuggled recipient gets nothing.
"""


def smuggle(tag, eod, sep):
    """A fake end of data `eod` followed by a transaction to bob whose
    lines end in `sep`."""
    return (eod +
            "MAIL FROM:<evil@example.test>" + sep +
            "RCPT TO:<bob@example.test>" + sep +
            "DATA" + sep +
            "Subject: smuggled-" + tag + sep + sep +
            "smuggled text " + tag + sep)


VARIANTS = [
    ("A", "\n.\n", "\n"),           # <LF>.<LF>
    ("B", "\r\n.\n", "\r\n"),       # <CR><LF>.<LF>
    ("C", "\n.\r\n", "\r\n"),       # <LF>.<CR><LF>
    ("D", "\r.\r", "\r\n"),         # <CR>.<CR>
    ("E", "\r\n.\r", "\r\n"),       # <CR><LF>.<CR>
    ("F", "\r.\r\n", "\r\n"),       # <CR>.<CR><LF>
]


def test_smuggling_yields_one_message(server):
    raw = server.raw()
    raw.expect(220)
    raw.expect(250, "EHLO client.example.test\r\n")
    raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
    raw.expect(250, "RCPT TO:<demo@example.test>\r\n")
    raw.expect(354, "DATA\r\n")
    data = "Subject: smuggling-attempt\r\n\r\nfirst line"
    for tag, eod, sep in VARIANTS:
        data += smuggle(tag, eod, sep) + "text after " + tag
    data += "\r\nlast line\r\n.\r\n"
    raw.send(data)
    code, lines = raw.reply()
    assert code == 250 and lines[0].startswith("2.0.0 Ok: queued as"), lines
    # The next reply is the one to QUIT: nothing was executed from the
    # content.
    raw.send("QUIT\r\n")
    assert raw.reply()[0] == 221
    assert raw.at_eof()

    msgs = server.wait_messages("demo", 1)
    server.wait_queue_empty()
    msgs = server.messages("demo")
    assert len(msgs) == 1
    assert server.messages("bob") == []
    m = msgs[0]
    assert m.count(b"MAIL FROM:<evil@example.test>") == len(VARIANTS)
    for tag, _, _ in VARIANTS:
        assert ("smuggled text " + tag).encode() in m, tag
        assert ("text after " + tag).encode() in m, tag
    assert b"first line" in m and m.endswith(b"last line\n")


def test_dot_lf_as_first_line_is_content(server):
    """A bare-LF dot line right after DATA does not end the message."""
    raw = server.raw()
    raw.expect(220)
    raw.expect(250, "EHLO client.example.test\r\n")
    raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
    raw.expect(250, "RCPT TO:<demo@example.test>\r\n")
    raw.expect(354, "DATA\r\n")
    raw.send(smuggle("G", ".\n", "\r\n") + "real end\r\n.\r\n")
    code, lines = raw.reply()
    assert code == 250 and "queued as" in lines[0], lines
    raw.send("QUIT\r\n")
    assert raw.reply()[0] == 221
    server.wait_messages("demo", 1)
    server.wait_queue_empty()
    assert len(server.messages("demo")) == 1
    assert server.messages("bob") == []
    assert b"smuggled text G" in server.messages("demo")[0]


def test_smuggling_via_bdat_is_content(server):
    """BDAT has no end-of-data marker at all: dot lines are content."""
    raw = server.raw()
    raw.expect(220)
    raw.expect(250, "EHLO client.example.test\r\n")
    raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
    raw.expect(250, "RCPT TO:<demo@example.test>\r\n")
    chunk = ("Subject: bdat-smuggle\r\n\r\nx" +
             smuggle("H", "\r\n.\r\n", "\r\n")).encode()
    raw.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    code, lines = raw.reply()
    assert code == 250 and "queued as" in lines[0], lines
    raw.send("QUIT\r\n")
    assert raw.reply()[0] == 221
    server.wait_messages("demo", 1)
    server.wait_queue_empty()
    assert len(server.messages("demo")) == 1
    assert server.messages("bob") == []
    assert b"\n.\nMAIL FROM:<evil@example.test>\n" in \
        server.messages("demo")[0]
