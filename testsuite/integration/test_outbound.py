"""
Outbound SMTP: the smtp delivery agent relays mail to other servers.

Instance A takes mail from a client in its mynetworks and relays it;
the receiving side is a second Postern instance B (its own Maildirs,
domain remote.test) or a scripted peer in this file that records every
byte it receives.  MX routing uses the fakedns fixture ($dns_servers).
Queue behaviour (retries, bounces after 4xx/5xx, delay warnings, flush)
is tested in test_queue*.py; here: what goes over the wire, routing, TLS
and AUTH, and what A logs.
"""
import base64
import re
import socket
import threading

import pytest

from conftest import (PASSWORD, WAIT, crlf, free_port, make_msg, parse,
                      wait_for)

REMOTE_DOMAIN = "remote.test"
REMOTE_HOST = "mx.remote.test"
FAST = "queue_run_delay = 1s\nminimal_backoff_time = 1s\n"


def remote_conf(extra=""):
    """Configuration of the receiving instance B: its own names."""
    return ("myhostname = %s\nmydomain = %s\n" % (REMOTE_HOST, REMOTE_DOMAIN)
            + extra)


def sender_conf(extra=""):
    return FAST + extra


# ------------------------------------------------------------ a test peer

class Peer:
    """A scripted SMTP server on 127.0.0.1.  Every connection is
    recorded: the command lines, and each message's bytes exactly as
    received (DATA up to and including the terminator line, BDAT chunk
    payloads joined).  It answers 250 to the end of data only after it
    read everything."""

    def __init__(self, ehlo=("PIPELINING", "SIZE 10240000", "8BITMIME",
                             "ENHANCEDSTATUSCODES"),
                 name="peer.remote.test", rcpt_replies=None,
                 data_reply="250 2.0.0 Ok: queued as PEER1",
                 greeting=None, host="127.0.0.1", port=0):
        self.ehlo = list(ehlo)
        self.name = name
        self.rcpt_replies = rcpt_replies or {}
        self.data_reply = data_reply
        self.greeting = greeting or "220 %s ESMTP test peer" % name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            rec = {"cmds": [], "msgs": [], "raw": b""}
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._serve, args=(c, rec),
                             daemon=True).start()

    def _serve(self, c, rec):
        c.settimeout(WAIT)
        f = c.makefile("rb")

        def reply(text):
            c.sendall(text.encode() + b"\r\n")

        accepted = 0

        try:
            reply(self.greeting)
            if not self.greeting.startswith("220"):
                # RFC 5321 §3.1: a server that refuses to talk still
                # answers QUIT.
                line = f.readline(4096)
                rec["cmds"].append(line.rstrip(b"\r\n").decode())
                reply("221 2.0.0 Bye")
                return
            while True:
                line = f.readline(4096)
                if not line:
                    return
                rec["raw"] += line
                cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
                rec["cmds"].append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    lines = [self.name] + self.ehlo
                    for l in lines[:-1]:
                        reply("250-" + l)
                    reply("250 " + lines[-1])
                elif verb == "HELO":
                    reply("250 " + self.name)
                elif verb == "MAIL":
                    accepted = 0
                    reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    r = "250 2.1.5 Ok"
                    for key, text in self.rcpt_replies.items():
                        if key in cmd:
                            r = text
                    accepted += r.startswith("2")
                    reply(r)
                elif verb == "DATA" and not accepted:
                    reply("554 5.5.1 Error: no valid recipients")
                elif verb == "DATA":
                    reply("354 End data with <CR><LF>.<CR><LF>")
                    data = b""
                    while True:
                        l = f.readline(65536)
                        if not l:
                            return
                        data += l
                        if l == b".\r\n" and (len(data) == 3 or
                                              data[-5:] == b"\r\n.\r\n"):
                            break
                    rec["raw"] += data
                    rec["msgs"].append(data)
                    reply(self.data_reply)
                elif verb == "BDAT":
                    parts = cmd.split()
                    n = int(parts[1])
                    chunk = f.read(n)
                    rec["raw"] += chunk
                    rec.setdefault("bdat", b"")
                    rec["bdat"] += chunk
                    rec.setdefault("bdat_cmds", []).append(cmd)
                    if len(parts) > 2 and parts[2].upper() == "LAST":
                        rec["msgs"].append(rec.pop("bdat"))
                        reply(self.data_reply)
                    else:
                        reply("250 2.0.0 %d octets received" % n)
                elif verb == "QUIT":
                    reply("221 2.0.0 Bye")
                    return
                elif verb == "AUTH":
                    # Records the mechanism and the decoded credentials.
                    parts = cmd.split()
                    mech = parts[1].upper()
                    if mech == "PLAIN":
                        resp = parts[2] if len(parts) > 2 else None
                        if resp is None:
                            reply("334 ")
                            resp = f.readline(4096).strip().decode()
                        creds = base64.b64decode(resp).split(b"\0")[1:]
                    elif mech == "LOGIN":
                        reply("334 VXNlcm5hbWU6")
                        u = base64.b64decode(f.readline(4096).strip())
                        reply("334 UGFzc3dvcmQ6")
                        pw = base64.b64decode(f.readline(4096).strip())
                        creds = [u, pw]
                    else:
                        reply("504 5.5.4 Unrecognized authentication type")
                        continue
                    rec.setdefault("auth", []).append(
                        (mech, [x.decode() for x in creds]))
                    reply("235 2.7.0 Authentication successful")
                elif verb in ("RSET", "NOOP"):
                    reply("250 2.0.0 Ok")
                else:
                    reply("502 5.5.2 Error: command not recognized")
        except OSError:
            return
        finally:
            c.close()

    def messages(self):
        with self.lock:
            return [m for c in self.conns for m in c["msgs"]]

    def wait_messages(self, n=1, timeout=WAIT):
        got = wait_for(lambda: len(self.messages()) >= n, timeout=timeout)
        assert got, "peer got %d messages, expected %d: %r" % (
            len(self.messages()), n, self.conns)
        return self.messages()

    def cmds(self, verb):
        with self.lock:
            return [x for c in self.conns for x in c["cmds"]
                    if x.upper().startswith(verb)]

    def close(self):
        self.stopped = True
        self.sock.close()


@pytest.fixture
def peer_factory():
    peers = []

    def make(**kw):
        p = Peer(**kw)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.close()


def relay_to(port, host="127.0.0.1"):
    return "relayhost = [%s]:%d\n" % (host, port)


def sent_line(srv, rcpt, relay_re, reply_re=r"250 .*"):
    """A's log line for a recipient sent through the smtp agent."""
    return srv.wait_log(
        r"to=<%s>, relay=%s, delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/"
        r"[0-9.]+/[0-9.]+, dsn=2\.0\.0, status=sent \(%s\)" %
        (re.escape(rcpt), relay_re, reply_re))


# ---------------------------------------------------------------- relaying

def test_relay_to_second_instance(make_server):
    """Mail for a remote domain from a client in mynetworks goes from A
    to B, which delivers it to its Maildir; A logs the relay line."""
    b = make_server(conf=remote_conf())
    a = make_server(conf=sender_conf(relay_to(b.smtp_port)))
    subject = "relay-to-b"
    a.send("alice@example.test", "demo@%s" % REMOTE_DOMAIN,
           make_msg(subject, body="first line\n.leading dot\nlast\n",
                    sender="alice@example.test",
                    to="demo@%s" % REMOTE_DOMAIN))
    msg = b.wait_token("demo", subject)[0]
    lines = sent_line(a, "demo@remote.test",
                      r"127\.0\.0\.1\[127\.0\.0\.1\]:%d" % b.smtp_port,
                      r"250 2\.0\.0 Ok: queued as \w+")
    # B's queue ID is the one A logged.
    qid_b = re.search(r"queued as (\w+)\)", lines[0]).group(1)
    assert b.log_lines(r"%s: " % qid_b)
    # The body arrived unchanged (dot-stuffing undone by B).
    assert msg.endswith(b"\n\nfirst line\n.leading dot\nlast\n")
    p = parse(msg)
    assert p["From"] == "alice@example.test"
    # A's Received header and then B's own: A added none of its own.
    received = p.get_all("Received")
    assert len(received) == 2
    assert "by mail.example.test" in received[1]
    assert "by %s" % REMOTE_HOST in received[0]
    a.wait_queue_empty()


def test_connection_cache_reuses_session(make_server, peer_factory):
    """Two messages in a row to the same next hop share one SMTP
    session: RSET after the first, no second connection."""
    peer = peer_factory()
    a = make_server(conf=sender_conf(
        relay_to(peer.port) + "smtp_connection_cache_time_limit = 10s\n"
        "smtp_tls_security_level = none\n"))
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN, make_msg("one"))
    peer.wait_messages(1)
    a.send("alice@example.test", "y@%s" % REMOTE_DOMAIN, make_msg("two"))
    peer.wait_messages(2)
    assert len(peer.conns) == 1
    assert [c.upper() for c in peer.conns[0]["cmds"]
            if c.upper() in ("RSET", "QUIT")][:1] == ["RSET"]
    assert len(peer.cmds("MAIL FROM")) == 2
    # The cached session is closed with QUIT once its time is up.
    assert wait_for(lambda: peer.cmds("QUIT"), timeout=WAIT)


# ------------------------------------------------------------- MX routing

def test_mx_second_host_when_first_refuses(make_server, fakedns):
    """Two MX hosts: the preferred one refuses connections (nothing
    listens on 127.0.0.2), the second one gets the mail."""
    b = make_server(conf=remote_conf())
    fakedns.set(REMOTE_DOMAIN, "MX", [(10, "mx1.remote.test"),
                                      (20, "mx2.remote.test")])
    fakedns.set("mx1.remote.test", "A", ["127.0.0.2"])
    fakedns.set("mx2.remote.test", "A", ["127.0.0.1"])
    # MX lookup (no brackets) on B's port.
    a = make_server(conf=sender_conf(
        fakedns.conf_line() + "\nrelayhost = %s:%d\n" %
        (REMOTE_DOMAIN, b.smtp_port)))
    subject = "mx-fallback"
    a.send("alice@example.test", "bob@%s" % REMOTE_DOMAIN,
           make_msg(subject))
    b.wait_token("bob", subject)
    sent_line(a, "bob@remote.test",
              r"mx2\.remote\.test\[127\.0\.0\.1\]:%d" % b.smtp_port)
    assert ("remote.test", "MX") in [(q[0].lower(), q[1])
                                      for q in fakedns.queries]


def peers_on_one_port(peer_factory, hosts, **kw):
    """One peer per loopback address, all on the same port (the port of
    an MX next hop applies to every MX host).  kw: per-host options."""
    for _ in range(20):
        port = free_port()
        peers = []
        try:
            for h in hosts:
                peers.append(peer_factory(host=h, port=port,
                                          **kw.get(h, {})))
            return port, peers
        except OSError:
            for p in peers:
                p.close()
    raise AssertionError("no port free on all of %s" % (hosts,))


def test_mx_4xx_moves_on_and_sessions_count(make_server, fakedns,
                                            peer_factory):
    """Three MX hosts: the first greets with 421 (not a session), the
    second refuses the recipient with 450 (one session), the third takes
    it (the second session of $smtp_mx_session_limit = 2)."""
    hosts = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
    port, (p1, p2, p3) = peers_on_one_port(peer_factory, hosts, **{
        hosts[0]: {"greeting": "421 4.3.2 busy, try later"},
        hosts[1]: {"rcpt_replies": {"@": "450 4.2.1 mailbox busy"}},
    })
    fakedns.set("three.test", "MX", [(10, "mx1.three.test"),
                                     (20, "mx2.three.test"),
                                     (30, "mx3.three.test")])
    for i, h in enumerate(hosts):
        fakedns.set("mx%d.three.test" % (i + 1), "A", [h])
    a = make_server(conf=sender_conf(
        fakedns.conf_line() + "\nrelayhost = three.test:%d\n" % port +
        "smtp_tls_security_level = none\n"))
    a.send("alice@example.test", "x@three.test", make_msg("three-mx"))
    p3.wait_messages(1)
    sent_line(a, "x@three.test",
              r"mx3\.three\.test\[127\.0\.0\.13\]:%d" % port)
    assert len(p1.conns) == 1 and p1.cmds("MAIL") == []
    assert p2.cmds("RCPT") == ["RCPT TO:<x@three.test>"]
    assert p2.messages() == []

    # With a session limit of 1 the second host is the last one tried:
    # its 450 defers the recipient, the third never hears of it.
    b = make_server(conf=sender_conf(
        fakedns.conf_line() + "\nrelayhost = three.test:%d\n" % port +
        "smtp_tls_security_level = none\nsmtp_mx_session_limit = 1\n"))
    qid = b.send("alice@example.test", "y@three.test", make_msg("limit"))
    b.wait_log(r"%s: to=<y@three\.test>, relay=mx2\.three\.test\[127\.0\.0"
               r"\.12\]:%d, .*dsn=4\.2\.1, status=deferred \(host "
               r"mx2\.three\.test\[127\.0\.0\.12\] said: 450 4\.2\.1 "
               r"mailbox busy \(in reply to RCPT TO command\)\)" %
               (qid, port))
    assert len(p3.messages()) == 1


def bounce_for(srv, user, token):
    """The bounce (from MAILER-DAEMON) in user's mailbox mentioning
    token."""
    msgs = srv.wait_token(user, token)
    bounces = [m for m in msgs if b"MAILER-DAEMON" in m]
    assert bounces, msgs
    return bounces[0]


def test_null_mx_bounces_at_once(make_server, fakedns):
    """RFC 7505: a domain with the null MX "0 ." does not accept mail;
    the sender gets a bounce at once, no delivery attempt."""
    fakedns.set("nullmx.test", "MX", ["0 ."])
    a = make_server(conf=sender_conf(fakedns.conf_line() + "\n"))
    a.send("demo@example.test", "someone@nullmx.test",
           make_msg("to-null-mx", sender="demo@example.test"))
    a.wait_log(r"to=<someone@nullmx\.test>, relay=none, .*dsn=5\.1\.10, "
               r"status=bounced \(Domain nullmx\.test does not accept mail "
               r"\(nullMX\)\)")
    bounce = bounce_for(a, "demo", "nullmx.test")
    assert b"does not accept mail (nullMX)" in bounce
    a.wait_queue_empty()


def test_unknown_domain_bounces(make_server, fakedns):
    """NXDOMAIN for the domain: 5.4.4 Host or domain name not found."""
    a = make_server(conf=sender_conf(fakedns.conf_line() + "\n"))
    a.send("demo@example.test", "x@nowhere.test",
           make_msg("to-nowhere", sender="demo@example.test"))
    a.wait_log(r"to=<x@nowhere\.test>, relay=none, .*dsn=5\.4\.4, "
               r"status=bounced \(Host or domain name not found\. Name "
               r"service error for name=nowhere\.test type=A")
    bounce_for(a, "demo", "nowhere.test")


def test_dns_servfail_defers(make_server, fakedns):
    """A DNS server failure is temporary: deferred with 4.4.3."""
    fakedns.servfail("broken.test")
    a = make_server(conf=sender_conf(fakedns.conf_line() + "\n"))
    qid = a.send("demo@example.test", "x@broken.test", make_msg("servfail"))
    a.wait_log(r"%s: to=<x@broken\.test>, relay=none, .*dsn=4\.4\.3, "
               r"status=deferred \(Host or domain name not found\. Name "
               r"service error for name=broken\.test type=MX" % qid)
    a.wait_deferred(qid)


def test_mx_pointing_to_myself_is_a_loop(make_server, fakedns):
    """The only MX is our own $myhostname: "mail for ... loops back to
    myself" (5.4.6), as Postfix says."""
    fakedns.set("loop.test", "MX", [(10, "mail.example.test")])
    fakedns.set("mail.example.test", "A", ["127.0.0.1"])
    a = make_server(conf=sender_conf(fakedns.conf_line() + "\n"))
    a.send("demo@example.test", "x@loop.test",
           make_msg("loop", sender="demo@example.test"))
    a.wait_log(r"to=<x@loop\.test>, relay=none, .*dsn=5\.4\.6, "
               r"status=bounced \(mail for loop\.test loops back to "
               r"myself\)")


# --------------------------------------------------------------------- TLS

def test_starttls_opportunistic(make_server):
    """smtp_tls_security_level = may (the default): B offers STARTTLS
    with its self-signed certificate, A uses it and logs the session."""
    b = make_server(conf=remote_conf())
    a = make_server(conf=sender_conf(relay_to(b.smtp_port)))
    subject = "over-tls"
    a.send("alice@example.test", "demo@%s" % REMOTE_DOMAIN,
           make_msg(subject))
    msg = b.wait_token("demo", subject)[0]
    a.wait_log(r"postern/smtp\[\d+\]: Untrusted TLS connection established "
               r"to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.3 with cipher "
               r"\S+ \(\d+/\d+ bits\)" % b.smtp_port)
    # B's Received header says the mail came over TLS.
    assert "with ESMTPS" in parse(msg).get_all("Received")[0]


def test_starttls_verify_with_cafile(make_server, fakedns):
    """smtp_tls_security_level = verify with B's certificate as
    smtp_tls_CAfile: the name (the MX host) matches, "Verified"."""
    b = make_server(conf=remote_conf())
    fakedns.set(REMOTE_DOMAIN, "MX", [(10, REMOTE_HOST)])
    fakedns.set(REMOTE_HOST, "A", ["127.0.0.1"])
    a = make_server(conf=sender_conf(
        fakedns.conf_line() + "\nrelayhost = %s:%d\n" %
        (REMOTE_DOMAIN, b.smtp_port) +
        "smtp_tls_security_level = verify\n"
        "smtp_tls_CAfile = %s\n" % (b.data / "ssl" / "postern.crt")))
    subject = "verified-tls"
    a.send("alice@example.test", "demo@%s" % REMOTE_DOMAIN,
           make_msg(subject))
    b.wait_token("demo", subject)
    a.wait_log(r"Verified TLS connection established to "
               r"mx\.remote\.test\[127\.0\.0\.1\]:%d: TLSv1\.3" % b.smtp_port)


def test_starttls_verify_with_capath(make_server, fakedns):
    """smtp_tls_CApath: a hashed directory (openssl rehash layout)
    holding B's certificate is trusted like a CA file."""
    import shutil
    import subprocess

    b = make_server(conf=remote_conf())
    crt = b.data / "ssl" / "postern.crt"
    h = subprocess.run(["openssl", "x509", "-noout", "-subject_hash",
                        "-in", str(crt)], capture_output=True, text=True,
                       check=True).stdout.strip()
    # Next to B's certificate, where A's agent can read it as in the
    # CA file test.
    capath = b.data / "ssl" / "capath"
    capath.mkdir()
    shutil.copy(str(crt), str(capath / ("%s.0" % h)))
    os_chmod_tree(capath)
    fakedns.set(REMOTE_DOMAIN, "MX", [(10, REMOTE_HOST)])
    fakedns.set(REMOTE_HOST, "A", ["127.0.0.1"])
    a = make_server(conf=sender_conf(
        fakedns.conf_line() + "\nrelayhost = %s:%d\n" %
        (REMOTE_DOMAIN, b.smtp_port) +
        "smtp_tls_security_level = verify\n"
        "smtp_tls_CApath = %s\n" % capath))
    subject = "verified-capath"
    a.send("alice@example.test", "demo@%s" % REMOTE_DOMAIN,
           make_msg(subject))
    b.wait_token("demo", subject)
    a.wait_log(r"Verified TLS connection established to "
               r"mx\.remote\.test\[127\.0\.0\.1\]:%d" % b.smtp_port)


def os_chmod_tree(top):
    """Let the unprivileged agent read a test's files (root runs)."""
    import os
    for dirpath, dirs, files in os.walk(str(top)):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)


def test_starttls_verify_fails_without_trust(make_server):
    """verify without a CA that signed B's certificate: deferred, not
    sent in plaintext."""
    b = make_server(conf=remote_conf())
    a = make_server(conf=sender_conf(relay_to(b.smtp_port) +
                                     "smtp_tls_security_level = verify\n"))
    qid = a.send("alice@example.test", "demo@%s" % REMOTE_DOMAIN,
                 make_msg("unverified"))
    a.wait_log(r"%s: to=<demo@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0"
               r"\.1\]:%d, .*dsn=4\.7\.5, status=deferred \(Cannot start TLS: "
               r"handshake failure" % (qid, b.smtp_port))
    assert b.count("demo") == 0


def test_encrypt_without_starttls_defers(make_server, peer_factory):
    """smtp_tls_security_level = encrypt and a server that does not
    offer STARTTLS: deferred, the message is not sent."""
    peer = peer_factory()
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = encrypt\n"))
    qid = a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN,
                 make_msg("must-encrypt"))
    a.wait_log(r"%s: to=<x@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]"
               r":%d, .*dsn=4\.7\.4, status=deferred \(TLS is required, but "
               r"was not offered by host 127\.0\.0\.1\[127\.0\.0\.1\]\)" %
               (qid, peer.port))
    a.wait_deferred(qid)
    assert peer.cmds("MAIL") == []


# -------------------------------------------------------------------- AUTH

def test_relayhost_auth_plain_over_starttls(make_server):
    """The "send through my provider's port 587" setup: relayhost
    [host]:587, a password in a texthash table, TLS required, AUTH
    PLAIN; B, which trusts no client by address, logs the login."""
    b = make_server(mynetworks="192.0.2.0/24", conf=remote_conf(
        "smtpd_sasl_auth_enable = yes\nauth_failure_delay = 0\n"))
    a = make_server(start=False)
    a.write_config(sender_conf(
        relay_to(b.submission_port) +
        "smtp_sasl_auth_enable = yes\n"
        "smtp_sasl_password_maps = texthash:%s\n" % (a.dir / "sasl_passwd") +
        "smtp_sasl_security_options = noanonymous\n"
        "smtp_tls_security_level = encrypt\n"))
    a.write(a.dir / "sasl_passwd", "[127.0.0.1]:%d demo:%s\n" %
            (b.submission_port, PASSWORD), mode=0o600)
    a.start()
    subject = "via-provider"
    a.send("alice@example.test", "carol@%s" % REMOTE_DOMAIN,
           make_msg(subject))
    b.wait_token("carol", subject)
    b.wait_log(r"client=localhost\[127\.0\.0\.1\], sasl_method=PLAIN, "
               r"sasl_username=demo$")
    sent_line(a, "carol@remote.test",
              r"127\.0\.0\.1\[127\.0\.0\.1\]:%d" % b.submission_port)
    a.wait_log(r"TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]"
               r":%d" % b.submission_port)
    assert PASSWORD not in a.log()


def test_auth_default_options_refuse_plaintext(make_server):
    """Postfix's default smtp_sasl_security_options (noplaintext)
    allows neither PLAIN nor LOGIN: deferred with Postfix's words, the
    password never sent."""
    b = make_server(mynetworks="192.0.2.0/24", conf=remote_conf(
        "smtpd_sasl_auth_enable = yes\n"))
    a = make_server(start=False)
    a.write_config(sender_conf(
        relay_to(b.submission_port) +
        "smtp_sasl_auth_enable = yes\n"
        "smtp_sasl_password_maps = texthash:%s\n" % (a.dir / "sasl_passwd") +
        "smtp_tls_security_level = encrypt\n"))
    a.write(a.dir / "sasl_passwd", "[127.0.0.1]:%d demo:%s\n" %
            (b.submission_port, PASSWORD), mode=0o600)
    a.start()
    qid = a.send("alice@example.test", "carol@%s" % REMOTE_DOMAIN,
                 make_msg("no-mech"))
    a.wait_log(r"%s: to=<carol@remote\.test>, .*status=deferred \(SASL "
               r"authentication failed; cannot authenticate to server "
               r"127\.0\.0\.1\[127\.0\.0\.1\]: no mechanism available\)" % qid)
    assert not b.log_lines(r"sasl_username=demo")


def test_auth_wrong_password_defers(make_server):
    """A refused login defers the mail with the server's reply."""
    b = make_server(mynetworks="192.0.2.0/24", conf=remote_conf(
        "smtpd_sasl_auth_enable = yes\nauth_failure_delay = 0\n"))
    a = make_server(start=False)
    a.write_config(sender_conf(
        relay_to(b.submission_port) +
        "smtp_sasl_auth_enable = yes\n"
        "smtp_sasl_password_maps = texthash:%s\n" % (a.dir / "sasl_passwd") +
        "smtp_sasl_security_options = noanonymous\n"))
    a.write(a.dir / "sasl_passwd", "[127.0.0.1]:%d demo:wrong\n" %
            b.submission_port, mode=0o600)
    a.start()
    qid = a.send("alice@example.test", "carol@%s" % REMOTE_DOMAIN,
                 make_msg("bad-pw"))
    a.wait_log(r"%s: to=<carol@remote\.test>, .*dsn=4\.7\.8, "
               r"status=deferred \(SASL authentication failed; server "
               r"127\.0\.0\.1\[127\.0\.0\.1\] said: 535 5\.7\.8 " % qid)
    a.wait_deferred(qid)


# ------------------------------------------------------- bytes on the wire

# A message with a leading-dot line, a lone "." line, a line of dots and
# no line end at the very end.  smtplib sends it with CRLF (and stuffs
# the dots); A stores LF and must put CRLF and dot-stuffing back.
TRICKY_BODY = "first\n.\n..two dots\n.dot start\nlast line"


def tricky_send(a, subject, mail_options=()):
    return a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN,
                  make_msg(subject, body=TRICKY_BODY, msgid=False,
                           date=False), mail_options=mail_options)


def test_data_bytes_crlf_and_dot_stuffing(make_server, peer_factory):
    """The peer answers DATA only after reading everything: the message
    arrives with CRLF line ends, dot-stuffed, one terminator."""
    peer = peer_factory()
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    tricky_send(a, "wire-data")
    data = peer.wait_messages(1)[0]
    assert data.endswith(b"\r\nfirst\r\n..\r\n...two dots\r\n"
                         b"..dot start\r\nlast line\r\n.\r\n")
    assert b"Subject: wire-data\r\n" in data
    # No bare CR or LF anywhere; the only "." line is the last one.
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", data) is None
    assert data.count(b"\r\n.\r\n") == 1
    # MAIL, RCPT and DATA were pipelined; SIZE was given.
    mail = peer.cmds("MAIL FROM")[0]
    assert re.fullmatch(r"MAIL FROM:<alice@example\.test> SIZE=\d+", mail)
    sent_line(a, "x@remote.test",
              r"127\.0\.0\.1\[127\.0\.0\.1\]:%d" % peer.port,
              r"250 2\.0\.0 Ok: queued as PEER1")


def test_bdat_when_chunking_offered(make_server, peer_factory):
    """CHUNKING (RFC 3030): BDAT with the exact byte count, no
    dot-stuffing and no terminator."""
    peer = peer_factory(ehlo=("PIPELINING", "8BITMIME", "CHUNKING"))
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    tricky_send(a, "wire-bdat")
    data = peer.wait_messages(1)[0]
    assert data.endswith(b"\r\nfirst\r\n.\r\n..two dots\r\n.dot start\r\n"
                         b"last line\r\n")
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", data) is None
    assert not peer.cmds("DATA")
    assert peer.conns[0]["bdat_cmds"] == ["BDAT %d LAST" % len(data)]


def test_bare_cr_is_not_passed_on(make_server, peer_factory):
    """A bare CR a client put in a line (kept by smtpd as content) never
    reaches the next server as a bare CR: no smuggled end of data."""
    peer = peer_factory()
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    raw = a.raw()
    try:
        raw.expect(220)
        raw.expect(250, "EHLO client.example.test\r\n")
        raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
        raw.expect(250, "RCPT TO:<x@%s>\r\n" % REMOTE_DOMAIN)
        raw.expect(354, "DATA\r\n")
        raw.expect(250, "Subject: cr\r\n\r\nbefore\r.\rMAIL FROM:<evil>\r\n"
                   "after\r\n.\r\n")
    finally:
        raw.close()
    data = peer.wait_messages(1)[0]
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", data) is None
    assert data.count(b"\r\n.\r\n") == 1
    assert b"\r\nafter\r\n.\r\n" in data
    # Nothing the client put in the message became a command.
    assert len(peer.cmds("MAIL")) == 1
    assert peer.cmds("MAIL")[0].startswith("MAIL FROM:<alice@example.test>")


def test_8bitmime_passed_on_when_offered(make_server, peer_factory):
    """BODY=8BITMIME from the client is passed on to a server that
    offers 8BITMIME, and dropped (the bytes unchanged) for one that does
    not."""
    body = "caf\u00e9 cr\u00e8me\n"
    with_8bit = peer_factory(ehlo=("PIPELINING", "8BITMIME"))
    a = make_server(conf=sender_conf(relay_to(with_8bit.port) +
                                     "smtp_tls_security_level = none\n"))
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN,
           make_msg("eight", body=body), mail_options=["BODY=8BITMIME"])
    data = with_8bit.wait_messages(1)[0]
    assert "caf\u00e9 cr\u00e8me\r\n".encode() in data
    assert re.fullmatch(r"MAIL FROM:<alice@example\.test> BODY=8BITMIME",
                        with_8bit.cmds("MAIL FROM")[0])

    without = peer_factory(ehlo=("PIPELINING",))
    a = make_server(conf=sender_conf(relay_to(without.port) +
                                     "smtp_tls_security_level = none\n"))
    a.send("alice@example.test", "y@%s" % REMOTE_DOMAIN,
           make_msg("eight-b", body=body), mail_options=["BODY=8BITMIME"])
    data = without.wait_messages(1)[0]
    assert "caf\u00e9 cr\u00e8me\r\n".encode() in data
    assert without.cmds("MAIL FROM")[0] == "MAIL FROM:<alice@example.test>"


MIME_8BIT = (
    "MIME-Version: 1.0\n"
    "Subject: mime-eight\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "preamble\n"
    "--b1\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "caf\u00e9 cr\u00e8me = 100%\n"
    "trailing space \n"
    "." + "x" * 100 + "\u00e9\n"
    "--b1\n"
    "Content-Type: application/octet-stream\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "AAECAwQFBgcICQ==\n"
    "--b1\n"
    "Content-Type: text/plain; charset=us-ascii\n"
    "\n"
    "plain ascii part\n"
    "--b1--\n")


def unstuff(data):
    """DATA bytes as the message: terminator removed, dots unstuffed."""
    assert data.endswith(b"\r\n.\r\n")
    lines = data[:-3].split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


def test_8bitmime_downgrade_to_quoted_printable(make_server, peer_factory):
    """RFC 6152 §3: an 8-bit MIME message to a server without 8BITMIME
    is made 7-bit: the 8-bit text part becomes quoted-printable, the
    multipart's 8bit label 7bit; base64 and ASCII parts and every other
    header stay as they were; the text decodes to what was sent."""
    import email
    import email.policy

    peer = peer_factory(ehlo=("PIPELINING", "SIZE 10240000"))
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN, MIME_8BIT,
           mail_options=["BODY=8BITMIME"])
    data = unstuff(peer.wait_messages(1)[0])
    assert max(data) < 0x80, data
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", data) is None
    assert all(len(l) <= 76 for l in data.split(b"\r\n")), data
    mail = peer.cmds("MAIL FROM")[0]
    assert "BODY=8BITMIME" not in mail
    # SIZE is what arrived (RFC 1870), after the conversion.
    assert mail.endswith(" SIZE=%d" % len(data)), (mail, len(data))
    head = data.partition(b"\r\n\r\n")[0] + b"\r\n"
    assert b"Subject: mime-eight\r\n" in head
    assert b"Content-Transfer-Encoding: 7bit\r\n" in head
    assert b"Content-Transfer-Encoding: 8bit" not in data
    assert (b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"caf=C3=A9 cr=C3=A8me =3D 100%\r\ntrailing space=20\r\n"
            in data)
    assert (b"Content-Transfer-Encoding: base64\r\n\r\n"
            b"AAECAwQFBgcICQ==\r\n--b1\r\n" in data)
    assert b"\r\n\r\nplain ascii part\r\n--b1--\r\n" in data
    msg = email.message_from_bytes(data, policy=email.policy.default)
    parts = list(msg.iter_parts())
    # The line end before a boundary belongs to the boundary (RFC 2046
    # §5.1.1).
    assert parts[0].get_content().replace("\r\n", "\n") == (
        "caf\u00e9 cr\u00e8me = 100%\ntrailing space \n." + "x" * 100 +
        "\u00e9")
    assert parts[1].get_content() == bytes(range(10))
    a.wait_log(r"to=<x@remote\.test>, relay=.*status=sent")


def test_8bitmime_downgrade_with_generic_maps(make_server, peer_factory):
    """A one-part 8-bit text message: its own header gets the new
    encoding, and the header rewritten by smtp_generic_maps is the one
    that goes."""
    peer = peer_factory(ehlo=("PIPELINING",))
    a = make_server(start=False)
    a.write(a.dir / "generic", "alice@example.test  alice.smith@isp.example\n")
    a.write_config(sender_conf(relay_to(peer.port) +
                               "smtp_tls_security_level = none\n"
                               "smtp_generic_maps = texthash:%s\n" %
                               (a.dir / "generic")))
    a.start()
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN,
           "From: alice@example.test\nMIME-Version: 1.0\n"
           "Subject: one-part\n"
           "Content-Type: text/plain; charset=iso-8859-1\n"
           "Content-Transfer-Encoding: 8bit\n\nd\xe9j\xe0 vu\n",
           mail_options=["BODY=8BITMIME"])
    data = unstuff(peer.wait_messages(1)[0])
    assert max(data) < 0x80, data
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"From: alice.smith@isp.example\r\n" in head + b"\r\n"
    assert b"Content-Transfer-Encoding: quoted-printable" in head
    assert b"8bit" not in head
    assert body == b"d=C3=A9j=C3=A0 vu\r\n"


def test_8bit_not_mime_or_8bit_header_goes_as_is(make_server,
                                                 peer_factory):
    """What cannot be made 7-bit goes as it is (as with Postfix): a
    message without MIME-Version, one with an 8-bit header field."""
    peer = peer_factory(ehlo=("PIPELINING",))
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    hdr8 = MIME_8BIT.replace("Subject: mime-eight",
                             "Subject: caf\u00e9-header")
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN, hdr8,
           mail_options=["BODY=8BITMIME"])
    data = peer.wait_messages(1)[0]
    assert "caf\u00e9 cr\u00e8me = 100%\r\n".encode() in data
    assert b"Content-Transfer-Encoding: 8bit\r\n" in data
    a.wait_log(r"8-bit message not converted for a server without "
               r"8BITMIME, sent as it is: a header has 8-bit bytes")


def test_8bit_detected_without_body_parameter(make_server, peer_factory):
    """8-bit bytes in a message whose client did not say BODY=8BITMIME
    are declared to a server that offers 8BITMIME (RFC 6152 §2)."""
    peer = peer_factory(ehlo=("PIPELINING", "8BITMIME"))
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN,
           make_msg("undeclared", body="na\u00efve\n"))
    data = peer.wait_messages(1)[0]
    assert "na\u00efve\r\n".encode() in data
    assert peer.cmds("MAIL FROM")[0].endswith(" BODY=8BITMIME")


def test_size_is_the_size_on_the_wire(make_server, peer_factory):
    """RFC 1870 §3: SIZE counts the CRLF line ends the server receives
    (the queue stores LF), not dot-stuffing or the terminator."""
    peer = peer_factory()
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    body = "".join("line %d\n.dot %d\n" % (i, i) for i in range(500))
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN,
           make_msg("size", body=body))
    data = unstuff(peer.wait_messages(1)[0])
    mail = peer.cmds("MAIL FROM")[0]
    assert mail.endswith(" SIZE=%d" % len(data)), (mail, len(data))


def test_size_limit_of_server_uses_wire_size(make_server, peer_factory):
    """A server's SIZE limit is compared with the size on the wire: a
    message whose stored size fits but whose CRLF size does not is
    bounced at once (5.3.4), without MAIL FROM."""
    body = "x\n" * 3000
    stored = len(make_msg("big", body=body, msgid=False, date=False))
    peer = peer_factory(ehlo=("PIPELINING", "SIZE %d" % (stored + 1500)))
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN,
           make_msg("big", body=body, msgid=False, date=False))
    a.wait_log(r"to=<x@remote\.test>, .*dsn=5\.3\.4, status=bounced "
               r"\(message size \d+ exceeds size limit %d" % (stored + 1500))
    assert peer.cmds("MAIL") == []


def test_smtputf8_needed_and_offered(make_server, peer_factory):
    """A UTF-8 address with SMTPUTF8: passed on with SMTPUTF8 to a
    server that offers it."""
    peer = peer_factory(ehlo=("PIPELINING", "8BITMIME", "SMTPUTF8"))
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    rcpt = "j\u00f6rg@%s" % REMOTE_DOMAIN
    a.send("alice@example.test", rcpt, make_msg("utf8-ok"),
           mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    peer.wait_messages(1)
    assert peer.cmds("MAIL FROM")[0].endswith(" SMTPUTF8")
    assert peer.cmds("RCPT TO")[0] == "RCPT TO:<%s>" % rcpt


def test_smtputf8_needed_not_offered_bounces(make_server, peer_factory):
    """A UTF-8 address and a server without SMTPUTF8: bounced with
    5.6.7, nothing sent; the sender gets the bounce."""
    peer = peer_factory(ehlo=("PIPELINING", "8BITMIME"))
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    rcpt = "j\u00f6rg@%s" % REMOTE_DOMAIN
    a.send("demo@example.test", rcpt, make_msg("utf8-no"),
           mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    a.wait_log(r"dsn=5\.6\.7, status=bounced \(SMTPUTF8 is required, but "
               r"was not offered by host 127\.0\.0\.1\[127\.0\.0\.1\]\)")
    assert peer.cmds("MAIL") == []
    bounce_for(a, "demo", "SMTPUTF8 is required")


def test_smtputf8_ascii_message_goes_without(make_server, peer_factory):
    """SMTPUTF8 asked for, but envelope and headers are ASCII: sent to a
    server without SMTPUTF8 as it is (Postfix's smtputf8_autodetect)."""
    peer = peer_factory(ehlo=("PIPELINING", "8BITMIME"))
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN,
           make_msg("ascii-utf8"), mail_options=["SMTPUTF8"])
    peer.wait_messages(1)
    assert "SMTPUTF8" not in peer.cmds("MAIL FROM")[0]


def test_dsn_parameters_passed_on(make_server, peer_factory):
    """RET, ENVID, NOTIFY and ORCPT go to a server that offers DSN."""
    peer = peer_factory(ehlo=("PIPELINING", "DSN"))
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN, make_msg("dsn"),
           mail_options=["RET=HDRS", "ENVID=abc+2Bdef"],
           rcpt_options=["NOTIFY=SUCCESS,FAILURE",
                         "ORCPT=rfc822;x@remote.test"])
    peer.wait_messages(1)
    mail = peer.cmds("MAIL FROM")[0]
    assert " RET=HDRS" in mail and " ENVID=abc+2Bdef" in mail
    assert peer.cmds("RCPT TO")[0] == ("RCPT TO:<x@remote.test> "
                                       "NOTIFY=SUCCESS,FAILURE "
                                       "ORCPT=rfc822;x@remote.test")


def test_notify_success_relayed_or_passed_on(make_server, peer_factory):
    """RFC 3461 §5.2.2: NOTIFY=SUCCESS to a server without DSN earns the
    sender an "Action: relayed" report; to a server with DSN the request
    goes with the message and the report is that server's to send."""
    no_dsn = peer_factory(ehlo=("PIPELINING",))
    a = make_server(conf=sender_conf(relay_to(no_dsn.port) +
                                     "smtp_tls_security_level = none\n"))
    a.send("demo@example.test", "x@%s" % REMOTE_DOMAIN,
           make_msg("notify-relayed"), rcpt_options=["NOTIFY=SUCCESS"])
    no_dsn.wait_messages(1)
    assert no_dsn.cmds("RCPT TO")[0] == "RCPT TO:<x@remote.test>"
    report = a.wait_messages("demo", 1)[0].decode("utf-8", "replace")
    assert re.search(r"^Action: relayed$", report, re.M), report
    assert re.search(r"^Final-Recipient: rfc822; x@remote\.test$", report,
                     re.M), report
    assert re.search(r"^Remote-MTA: dns; ", report, re.M), report

    with_dsn = peer_factory(ehlo=("PIPELINING", "DSN"))
    b = make_server(conf=sender_conf(relay_to(with_dsn.port) +
                                     "smtp_tls_security_level = none\n"))
    b.send("demo@example.test", "y@%s" % REMOTE_DOMAIN,
           make_msg("notify-passed"), rcpt_options=["NOTIFY=SUCCESS"])
    with_dsn.wait_messages(1)
    assert with_dsn.cmds("RCPT TO")[0] == ("RCPT TO:<y@remote.test> "
                                           "NOTIFY=SUCCESS")
    b.wait_log(r"to=<y@remote\.test>, .*status=sent")
    b.wait_queue_empty()
    assert b.messages("demo") == []
    assert not b.log_lines(r"sender delivery status notification")


def test_rcpt_replies_per_recipient(make_server, peer_factory):
    """One recipient refused with 550, one accepted: the refused one
    bounces with the server's words, the other is sent."""
    peer = peer_factory(rcpt_replies={
        "gone@": "550 5.1.1 <gone@remote.test>: Recipient address rejected"})
    a = make_server(conf=sender_conf(relay_to(peer.port) +
                                     "smtp_tls_security_level = none\n"))
    a.send("demo@example.test", ["ok@%s" % REMOTE_DOMAIN,
                                 "gone@%s" % REMOTE_DOMAIN],
           make_msg("partial", sender="demo@example.test"))
    peer.wait_messages(1)
    a.wait_log(r"to=<gone@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]"
               r":%d, .*dsn=5\.1\.1, status=bounced \(host 127\.0\.0\.1"
               r"\[127\.0\.0\.1\] said: 550 5\.1\.1 <gone@remote\.test>: "
               r"Recipient address rejected \(in reply to RCPT TO "
               r"command\)\)" % peer.port)
    sent_line(a, "ok@remote.test",
              r"127\.0\.0\.1\[127\.0\.0\.1\]:%d" % peer.port)
    assert peer.cmds("RCPT TO") == ["RCPT TO:<ok@remote.test>",
                                    "RCPT TO:<gone@remote.test>"]


def test_generic_maps_rewrite_envelope_and_headers(make_server, peer_factory):
    """smtp_generic_maps rewrites the envelope sender and the address
    headers of mail going out (the "my ISP wants its own address" case);
    the stored message and other headers stay as they are."""
    peer = peer_factory()
    a = make_server(start=False)
    a.write(a.dir / "generic", "alice@example.test  alice.smith@isp.example\n")
    a.write_config(sender_conf(relay_to(peer.port) +
                               "smtp_tls_security_level = none\n"
                               "smtp_generic_maps = texthash:%s\n" %
                               (a.dir / "generic")))
    a.start()
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN,
           make_msg("generic", sender="Alice <alice@example.test>",
                    to="x@%s" % REMOTE_DOMAIN,
                    extra=["Reply-To: alice@example.test",
                           "X-Note: alice@example.test stays"]))
    data = peer.wait_messages(1)[0]
    assert peer.cmds("MAIL FROM")[0].startswith(
        "MAIL FROM:<alice.smith@isp.example>")
    assert peer.cmds("RCPT TO") == ["RCPT TO:<x@remote.test>"]
    assert b"\r\nFrom: Alice <alice.smith@isp.example>\r\n" in data
    assert b"\r\nReply-To: alice.smith@isp.example\r\n" in data
    assert b"\r\nX-Note: alice@example.test stays\r\n" in data
    assert b"\r\nTo: x@remote.test\r\n" in data


def test_auth_login_with_mechanism_filter(make_server, peer_factory):
    """$smtp_sasl_mechanism_filter = login: LOGIN is used although the
    server also offers PLAIN; the password is looked up by the host name
    of the next hop when "[host]:port" has no entry."""
    peer = peer_factory(ehlo=("PIPELINING", "AUTH PLAIN LOGIN"))
    a = make_server(start=False)
    a.write(a.dir / "sasl_passwd", "127.0.0.1 bob:pa:ss word\n",
            mode=0o600)
    a.write_config(sender_conf(
        relay_to(peer.port) + "smtp_tls_security_level = none\n"
        "smtp_sasl_auth_enable = yes\n"
        "smtp_sasl_password_maps = texthash:%s\n" % (a.dir / "sasl_passwd")
        + "smtp_sasl_security_options = noanonymous\n"
        "smtp_sasl_mechanism_filter = login\n"))
    a.start()
    a.send("alice@example.test", "x@%s" % REMOTE_DOMAIN, make_msg("login"))
    peer.wait_messages(1)
    assert peer.conns[0]["auth"] == [("LOGIN", ["bob", "pa:ss word"])]
    cmds = [c.split()[0].upper() for c in peer.conns[0]["cmds"]]
    assert cmds.index("AUTH") < cmds.index("MAIL")
