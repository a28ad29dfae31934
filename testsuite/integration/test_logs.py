"""
Logs (DESIGN §1): one grep of the queue ID follows a message from smtpd
through the queue manager to delivery, in Postfix's format.
"""
import re

from conftest import make_msg


def test_one_grep_follows_a_message(server):
    qid = server.send("alice@example.test", "demo@example.test",
                      make_msg("follow-me"))
    server.wait_token("demo", "follow-me")
    server.wait_log(r"%s: removed" % qid)
    lines = [l for l in server.log().splitlines() if qid in l]
    text = "\n".join(lines)
    assert re.search(r"postern/smtpd\[\d+\]: %s: client=localhost"
                     r"\[127\.0\.0\.1\]" % qid, text), text
    assert re.search(r"postern/\w+\[\d+\]: %s: message-id=<[^>]+>" % qid,
                     text), text
    m = re.search(r"postern/\w+\[\d+\]: %s: from=<alice@example\.test>, "
                  r"size=(\d+), nrcpt=1 \(queue active\)" % qid, text)
    assert m, text
    assert int(m.group(1)) > 0
    assert re.search(r"postern/\w+\[\d+\]: %s: to=<demo@example\.test>, "
                     r"relay=local, delay=[\d.]+, "
                     r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, "
                     r"status=sent \(delivered to maildir\)" % qid, text), text
    assert re.search(r"postern/\w+\[\d+\]: %s: removed" % qid, text), text
    # in that order
    order = [i for i, l in enumerate(lines)
             if re.search(r": (client=|from=|to=|removed)", l)]
    kinds = [re.search(r": (client|from|to|removed)", lines[i]).group(1)
             for i in order]
    assert kinds.index("client") < kinds.index("from") < \
        kinds.index("to") < kinds.index("removed"), kinds


def test_connect_and_disconnect_lines(server):
    with server.smtp() as s:
        s.ehlo()
        s.noop()
    server.wait_log(r"postern/smtpd\[\d+\]: disconnect from "
                    r"localhost\[127\.0\.0\.1\] ehlo=1 noop=1 quit=1 "
                    r"commands=3")
    assert server.log_lines(r"postern/smtpd\[\d+\]: connect from "
                            r"localhost\[127\.0\.0\.1\]")


def test_rejected_recipient_logged(server):
    with server.smtp() as s:
        s.ehlo()
        s.mail("alice@example.test")
        assert s.rcpt("ghost@example.test")[0] == 550
    server.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: "
                    r"550 5\.1\.1 <ghost@example\.test>: Recipient address "
                    r"rejected: User unknown in local recipient table; "
                    r"from=<alice@example\.test> to=<ghost@example\.test> "
                    r"proto=ESMTP helo=<client\.example\.test>")
