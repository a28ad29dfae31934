"""
TLS in smtpd (DESIGN §8): STARTTLS on the smtp port (RFC 3207), implicit
TLS on smtps (RFC 8314), the self-signed certificate posternd makes at the
first start, the Received header and log lines, and the STARTTLS command
injection attack (bytes pipelined after STARTTLS are discarded).
"""
import pwd
import re
import shutil
import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import HOSTNAME, PASSWORD, make_msg, requires_root

SERVER_OPTIONS = {"smtps": True}


def client_ctx():
    """The certificate is self-signed: no verification."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def ehlo(raw):
    raw.expect(220)
    return raw.expect(250, "EHLO client.example.test\r\n")


def starttls(raw):
    """STARTTLS on a RawSMTP, then the handshake on its socket."""
    raw.expect(220, "STARTTLS\r\n")
    assert raw.buf == b""
    raw.sock = client_ctx().wrap_socket(raw.sock)


def test_self_signed_created(mserver):
    cert = mserver.data / "ssl" / "postern.crt"
    key = mserver.data / "ssl" / "postern.key"
    assert cert.exists() and key.exists()
    assert key.stat().st_mode & 0o077 == 0
    assert mserver.log_lines(
        r"created a self-signed certificate for %s in %s" %
        (re.escape(HOSTNAME), re.escape(str(cert))))


def test_ehlo_advertises_starttls(mserver):
    raw = mserver.raw()
    try:
        assert "STARTTLS" in ehlo(raw)
        starttls(raw)
        # In TLS the session starts over: STARTTLS no longer offered.
        assert "STARTTLS" not in raw.expect(
            250, "EHLO client.example.test\r\n")
    finally:
        raw.close()


def test_openssl_s_client(mserver):
    r = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect",
         "127.0.0.1:%d" % mserver.smtp_port],
        input=b"QUIT\r\n", capture_output=True, timeout=30)
    out = r.stdout.decode("utf-8", "replace")
    assert re.search(r"subject=.*CN ?= ?%s" % re.escape(HOSTNAME), out), out
    assert re.search(r"(Protocol\s*:|New,) *TLSv1\.[23]", out), out
    mserver.wait_log(r"Anonymous TLS connection established from "
                     r"localhost\[127\.0\.0\.1\]: TLSv1\.[23] with cipher")


def test_starttls_delivery_esmtps(mserver):
    with mserver.smtp() as s:
        s.ehlo()
        assert s.has_extn("starttls")
        code, _ = s.starttls(context=client_ctx())
        assert code == 220
        s.ehlo()
        assert not s.has_extn("starttls")
        s.sendmail("alice@example.test", ["demo@example.test"],
                   make_msg("tls-starttls-1").encode())
    msg = mserver.wait_token("demo", "tls-starttls-1")[0].decode()
    rcvd = msg.split("\n\n", 1)[0]
    assert re.search(r"with ESMTPS id", rcvd), rcvd
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+", rcvd), rcvd


def test_implicit_tls_smtps(mserver):
    assert mserver.smtps_port
    with smtplib.SMTP_SSL("127.0.0.1", mserver.smtps_port,
                          local_hostname="client.example.test",
                          context=client_ctx(), timeout=20) as s:
        code, _ = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls")
        # smtps is for submission: log in first.
        assert s.login("alice", PASSWORD)[0] == 235
        s.sendmail("alice@example.test", ["demo@example.test"],
                   make_msg("tls-smtps-1").encode())
    msg = mserver.wait_token("demo", "tls-smtps-1")[0].decode()
    assert "with ESMTPSA id" in msg.split("\n\n", 1)[0]


def test_starttls_injection(mserver):
    """CVE-2011-0411: RSET sent in plaintext right after STARTTLS must
    not be answered inside TLS."""
    raw = mserver.raw()
    try:
        ehlo(raw)
        raw.send(b"STARTTLS\r\nRSET\r\n")
        raw.expect(220)
        assert raw.buf == b""
        raw.sock = client_ctx().wrap_socket(raw.sock)
        raw.sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            data = raw.sock.recv(4096)
            pytest.fail("reply inside TLS to an injected command: %r" %
                        data)
        raw.sock.settimeout(20)
        # The first reply inside TLS is the one to our EHLO.
        lines = raw.expect(250, "EHLO client.example.test\r\n")
        assert lines[0] == HOSTNAME
        raw.sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            data = raw.sock.recv(4096)
            pytest.fail("unexpected data after EHLO: %r" % data)
    finally:
        raw.close()
    mserver.wait_log(r"discarding \d+ bytes pipelined after STARTTLS")


def test_starttls_twice_and_syntax(mserver):
    raw = mserver.raw()
    try:
        ehlo(raw)
        code, lines = raw.cmd("STARTTLS now")
        assert code == 501 and lines[0].startswith("5.5.4"), lines
        starttls(raw)
        code, lines = raw.cmd("STARTTLS")
        assert code == 503 and lines[0].startswith("5.5.1"), lines
        raw.expect(250, "EHLO client.example.test\r\n")
        code, lines = raw.cmd("STARTTLS")
        assert code == 503, lines
        raw.expect(250, "NOOP\r\n")
    finally:
        raw.close()


def test_encrypt_level(make_server):
    srv = make_server(conf="smtpd_tls_security_level = encrypt\n")
    raw = srv.raw()
    try:
        ehlo(raw)
        code, lines = raw.cmd("MAIL FROM:<alice@example.test>")
        assert code == 530, lines
        assert lines[0] == "5.7.0 Must issue a STARTTLS command first"
        starttls(raw)
        raw.expect(250, "EHLO client.example.test\r\n")
        raw.expect(250, "MAIL FROM:<alice@example.test>\r\n")
    finally:
        raw.close()


def test_ssl_no_disables_tls(make_server):
    srv = make_server(conf="ssl = no\n")
    raw = srv.raw()
    try:
        assert "STARTTLS" not in ehlo(raw)
        code, _ = raw.cmd("STARTTLS")
        assert code == 502
    finally:
        raw.close()
    assert not (srv.data / "ssl" / "postern.crt").exists()


@requires_root
def test_root_mode_key_for_run_user(make_server, root_users):
    """posternd runs as root, smtpd as run_user: the key is given to
    run_user (0600) and STARTTLS works."""
    srv = make_server(root_mode=True, system_users=root_users)
    key = srv.data / "ssl" / "postern.key"
    st = key.stat()
    assert st.st_uid == pwd.getpwnam("postern").pw_uid
    assert st.st_mode & 0o777 == 0o600
    with srv.smtp() as s:
        s.ehlo()
        assert s.starttls(context=client_ctx())[0] == 220
        assert s.ehlo()[0] == 250


def test_large_message_over_tls(mserver):
    """Many TLS records per read: data OpenSSL holds is not lost."""
    body = ("".join("line %06d of a big message over TLS\n" % i
                    for i in range(40000)))
    with smtplib.SMTP_SSL("127.0.0.1", mserver.smtps_port,
                          local_hostname="client.example.test",
                          context=client_ctx(), timeout=20) as s:
        s.ehlo()
        s.login("alice", PASSWORD)
        for n in range(2):
            s.sendmail("alice@example.test", ["demo@example.test"],
                       make_msg("tls-big-%d" % n, body=body).encode())
    for n in range(2):
        msg = mserver.wait_token("demo", "tls-big-%d" % n)[0]
        assert b"line 039999 of a big message" in msg


@pytest.mark.skipif(not shutil.which("curl"), reason="no curl")
def test_curl_ssl_reqd(make_server, tmp_path):
    """curl --ssl-reqd: STARTTLS on submission, STLS on pop3, STARTTLS
    on imap, each required by the client (curl gives up when the server
    does not offer it); the log shows TLS on every login."""
    srv = make_server(pop3=True, imap=True)
    tls = ["--ssl-reqd", "--insecure", "-sS", "--max-time", "60"]
    msg = tmp_path / "msg.txt"
    msg.write_bytes(make_msg("curl-tls-1").replace("\n", "\r\n").encode())
    r = subprocess.run(
        ["curl"] + tls + ["smtp://127.0.0.1:%d" % srv.submission_port,
                          "--user", "alice:" + PASSWORD,
                          "--mail-from", "alice@example.test",
                          "--mail-rcpt", "alice@example.test",
                          "--upload-file", str(msg)],
        capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    raw = srv.wait_token("alice", "curl-tls-1")[0].decode()
    head = raw.split("\n\n", 1)[0]
    assert "with ESMTPSA id" in head, head
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+", head), head

    r = subprocess.run(
        ["curl"] + tls + ["pop3://127.0.0.1:%d/1" % srv.pop3_port,
                          "--user", "alice:" + PASSWORD],
        capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr
    assert b"Subject: curl-tls-1\r\n" in r.stdout
    srv.wait_log(r"pop3-login\[\d+\]: Login: user=<alice>, .*, TLS")

    r = subprocess.run(
        ["curl"] + tls + ["imap://127.0.0.1:%d/INBOX;UID=1" % srv.imap_port,
                          "--user", "alice:" + PASSWORD],
        capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr
    assert b"Subject: curl-tls-1\r\n" in r.stdout
    srv.wait_log(r"imap-login\[\d+\]: Login: user=<alice>, .*, TLS")


@pytest.mark.skipif(not shutil.which("curl"), reason="no curl")
def test_curl_ssl_reqd_refused_without_tls(make_server):
    """With TLS off on the server (ssl = no), curl --ssl-reqd refuses to
    log in in clear text: the requirement is the client's, and the
    server must not pretend to offer STARTTLS."""
    srv = make_server(pop3=True, conf="ssl = no\n")
    r = subprocess.run(
        ["curl", "--ssl-reqd", "-sS", "--max-time", "30",
         "pop3://127.0.0.1:%d/" % srv.pop3_port,
         "--user", "alice:" + PASSWORD],
        capture_output=True, text=True, timeout=60)
    # curl: (64) Requested SSL level failed
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert not srv.log_lines(r"pop3-login\[\d+\]: Login: user=<alice>")
