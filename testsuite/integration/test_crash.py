"""
Durability (DESIGN §3): 300 messages from 10 concurrent SMTP clients;
at a random point in the middle of the load every Postern process
(posternd and all services, delivery workers included) is killed with
SIGKILL; posternd is started again and the queue drains.  Every message
that got a 250 reply is then in the Maildir exactly once, no message
appears twice, no file in the Maildir is partial, and nothing left in
tmp/ is visible in new/ or cur/.

The kill point is random; POSTERN_CRASH_SEED=N repeats a run.
"""
import collections
import os
import random
import smtplib
import threading
import time

from conftest import WAIT, crlf, parse, wait_for

CLIENTS = 10
PER_CLIENT = 30
LOAD_TIME_LIMIT = 150        # seconds for the whole load
FILLER = "".join("line %03d of the message body, some text to make it "
                 "longer.\n" % i for i in range(30))


def message(mid):
    return ("From: load@example.test\n"
            "To: demo@example.test\n"
            "Subject: %s\n"
            "\n%sEND-OF-MESSAGE %s\n" % (mid, FILLER, mid))


def test_kill9_everything_mid_load(server):
    seed = int(os.environ.get("POSTERN_CRASH_SEED") or
               random.randrange(1 << 30))
    print("POSTERN_CRASH_SEED=%d" % seed)
    rng = random.Random(seed)
    total = CLIENTS * PER_CLIENT
    kill_after = rng.randint(total // 5, total * 2 // 3)

    lock = threading.Lock()
    acked, attempted, errors = set(), set(), []
    reached = threading.Event()      # kill_after messages acknowledged
    killed = threading.Event()
    restarted = threading.Event()
    deadline = time.monotonic() + LOAD_TIME_LIMIT

    def client(c):
        s = None
        for i in range(PER_CLIENT):
            if time.monotonic() > deadline:
                break
            mid = "crash-%02d-%03d" % (c, i)
            try:
                if s is None:
                    s = smtplib.SMTP("127.0.0.1", server.smtp_port,
                                     local_hostname="client.example.test",
                                     timeout=WAIT)
                    s.ehlo()
                if s.mail("load@example.test")[0] != 250 or \
                        s.rcpt("demo@example.test")[0] != 250:
                    raise smtplib.SMTPException("MAIL/RCPT refused")
                with lock:
                    attempted.add(mid)
                code, text = s.data(crlf(message(mid)))
                if code == 250:
                    with lock:
                        acked.add(mid)
                        if len(acked) >= kill_after:
                            reached.set()
                else:
                    raise smtplib.SMTPException("DATA: %d %r" % (code, text))
            except (smtplib.SMTPException, OSError) as e:
                with lock:
                    errors.append((mid, killed.is_set(), repr(e)))
                try:
                    if s is not None:
                        s.close()
                except OSError:
                    pass
                s = None
                # the server is (being) killed: wait until it is back
                if killed.is_set():
                    restarted.wait(timeout=60)
        if s is not None:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass

    threads = [threading.Thread(target=client, args=(c,), daemon=True)
               for c in range(CLIENTS)]
    for t in threads:
        t.start()
    assert reached.wait(timeout=LOAD_TIME_LIMIT), (len(acked), errors[:5])
    # kill -9 every Postern process at once
    killed.set()
    pids = server.kill_all()
    assert len(pids) >= 4, pids          # posternd, smtpd, qmgr, local
    at_kill = len(acked)
    server.start()
    restarted.set()
    for t in threads:
        t.join(timeout=max(1, deadline - time.monotonic()) + 30)
    assert not any(t.is_alive() for t in threads), "clients hung"
    # no error before the kill; after it, at most a couple per client
    before_kill = [e for e in errors if not e[1]]
    assert before_kill == [], before_kill[:5]
    assert len(acked) >= total - 2 * CLIENTS, (len(acked), errors[:5])
    assert at_kill < len(acked)

    # everything acknowledged gets delivered
    def delivered():
        subs = set()
        for raw in server.messages("demo"):
            subs.add(parse(raw)["Subject"])
        # (tmp/ may keep the parts of transactions cut by the kill)
        return acked <= subs and not server.queue_files(
            ("incoming", "active", "deferred", "hold"))
    assert wait_for(delivered, timeout=90), (
        "missing: %s; queue: %s" % (
            sorted(acked - {parse(r)["Subject"]
                            for r in server.messages("demo")})[:10],
            server.queue_files()[:10]))

    counts = collections.Counter()
    for path in server.maildir_files("demo"):
        raw = path.read_bytes()
        m = parse(raw)
        mid = m["Subject"]
        counts[mid] += 1
        # complete: the body marker is the end of the file
        assert raw.endswith(("END-OF-MESSAGE %s\n" % mid).encode()), path
        assert FILLER.encode() in raw, path
    dup = {k: v for k, v in counts.items() if v > 1}
    assert dup == {}, "delivered more than once: %s" % dup
    assert set(counts) <= attempted, set(counts) - attempted
    for mid in acked:
        assert counts[mid] == 1, mid

    # leftovers in tmp/ are never visible in new/ or cur/
    md = server.maildir("demo")
    visible = {p.name.split(":")[0] for p in server.maildir_files("demo")}
    tmp = {n.split(":")[0] for n in os.listdir(md / "tmp")}
    assert tmp & visible == set()
    print("seed %d: killed after %d acks; %d acked, %d attempted, %d "
          "delivered, %d tmp leftovers" % (seed, at_kill, len(acked),
                                           len(attempted), len(counts),
                                           len(tmp)))
