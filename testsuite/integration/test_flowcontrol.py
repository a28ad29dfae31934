"""
in_flow_delay (DESIGN §9, Postfix semantics): when mail arrives faster
than qmgr takes it from incoming/, smtpd waits up to in_flow_delay for a
token from qmgr before committing each message, so a sender is slowed
down instead of the queue growing without bound -- and no message is
refused or lost for it.
"""
import threading
import time

from conftest import make_msg
from fakesmtp import FakeSMTP

N = 12


def burst(srv, n, tag):
    """n messages one after another on one connection; the seconds each
    took from MAIL to the 250 after the data."""
    took = []
    with srv.smtp(timeout=60) as s:
        s.ehlo()
        for i in range(n):
            t0 = time.monotonic()
            s.sendmail("alice@example.test", ["bob@remote.test"],
                       make_msg("%s-%d" % (tag, i)))
            took.append(time.monotonic() - t0)
    return took


def stalled_peer(gate):
    # The remote end takes the data, then answers only once the gate
    # opens: every delivery hangs, the active set fills up.
    def eod(_data):
        gate.wait(120)
        return "250 2.0.0 Ok"
    return FakeSMTP(replies={"EOD": eod}).start()


def conf(peer, delay):
    return ("relayhost = [127.0.0.1]:%d\n"
            "smtp_tls_security_level = none\n"
            "qmgr_message_active_limit = 2\n"
            "in_flow_delay = %s\n" % (peer.port, delay))


def test_stalled_delivery_slows_smtpd(make_server):
    gate = threading.Event()
    peer = stalled_peer(gate)
    try:
        srv = make_server(conf=conf(peer, "1s"))
        took = burst(srv, N, "flow")
        print("seconds per message:", " ".join("%.2f" % t for t in took))
        # While qmgr keeps up the first messages pass at once; once its
        # active set is full each one waits for in_flow_delay.
        assert min(took[:2]) < 0.5, took
        slow = took[-6:]
        assert all(t >= 0.8 for t in slow), took
        assert sum(slow) / len(slow) < 3, took     # bounded by the delay
        # Nothing was refused (sendmail raises on any failure) and,
        # once the peer answers, every message is delivered exactly once.
        gate.set()
        got = peer.wait_transactions(N, timeout=60)
        subjects = sorted(t.data.split(b"Subject: ")[1].split(b"\r\n")[0]
                          for t in got)
        assert subjects == sorted(("flow-%d" % i).encode()
                                  for i in range(N)), subjects
        srv.wait_queue_empty(timeout=60)
    finally:
        gate.set()
        peer.stop()


def test_no_delay_while_qmgr_keeps_up(make_server):
    """The same burst to a peer that answers at once is not slowed."""
    gate = threading.Event()
    gate.set()
    peer = stalled_peer(gate)
    try:
        srv = make_server(conf=conf(peer, "1s"))
        took = burst(srv, N, "fast")
        print("seconds per message:", " ".join("%.2f" % t for t in took))
        assert sorted(took)[N // 2] < 0.5, took
        peer.wait_transactions(N, timeout=60)
    finally:
        peer.stop()


def test_in_flow_delay_zero_turns_it_off(make_server):
    gate = threading.Event()
    peer = stalled_peer(gate)
    try:
        srv = make_server(conf=conf(peer, "0"))
        took = burst(srv, N, "off")
        assert sorted(took)[N // 2] < 0.5, took
        gate.set()
        peer.wait_transactions(N, timeout=60)
    finally:
        gate.set()
        peer.stop()
