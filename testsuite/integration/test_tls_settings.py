"""
TLS settings shared by every server context: ssl_min_protocol and
ssl_cipher_list apply to smtpd, and a certificate or key the admin
configured that cannot be loaded stops posternd at start with one line
naming the file (instead of a server that quietly runs without TLS).
"""
import smtplib
import ssl
import subprocess

import pytest

from conftest import PASSWORD


def client_ctx(maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def failed_start(srv):
    """Start posternd, expect it to exit non-zero; its output."""
    srv.start(wait=False)
    rc = srv.proc.wait(timeout=30)
    assert rc != 0, srv.log_tail()
    return srv.log()


def make_pair(srv):
    cert, key = srv.dir / "own.crt", srv.dir / "own.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-subj", "/CN=mail.example.test", "-days", "2"],
                   check=True, capture_output=True, timeout=120)
    srv.chown(cert)
    srv.chown(key)
    return cert, key


@pytest.mark.parametrize("param", ["smtpd_tls_cert_file", "ssl_cert"])
def test_missing_certificate_stops_start(make_server, param):
    srv = make_server(start=False, conf="%s = /nonexistent/postern.pem\n" %
                      param)
    out = failed_start(srv)
    lines = [l for l in out.splitlines() if "/nonexistent/postern.pem" in l]
    assert len(lines) == 1, out
    assert "fatal" in lines[0] and "No such file" in lines[0], lines


def test_unusable_key_stops_start(make_server):
    srv = make_server(start=False)
    cert, key = make_pair(srv)
    srv.write(srv.dir / "bad.key", "not a key\n")
    # Dovecot's "<file" form is understood.
    srv.write_config("ssl_cert = <%s\nssl_key = <%s\n" %
                     (cert, srv.dir / "bad.key"))
    out = failed_start(srv)
    assert [l for l in out.splitlines()
            if "fatal" in l and str(srv.dir / "bad.key") in l], out


def test_configured_pair_is_used(make_server):
    srv = make_server(start=False, smtps=True)
    cert, key = make_pair(srv)
    srv.write_config("smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n"
                     % (cert, key))
    srv.start()
    with smtplib.SMTP_SSL("127.0.0.1", srv.smtps_port, context=client_ctx(),
                          local_hostname="client.example.test",
                          timeout=20) as s:
        der = s.sock.getpeercert(binary_form=True)
        assert s.login("alice", PASSWORD)[0] == 235
    pem = ssl.DER_cert_to_PEM_cert(der)
    assert pem.split() == cert.read_text().split()


def test_bad_min_protocol_stops_start(make_server):
    srv = make_server(start=False, conf="ssl_min_protocol = TLSv1.1\n")
    out = failed_start(srv)
    assert [l for l in out.splitlines()
            if "fatal" in l and "ssl_min_protocol" in l], out


def test_bad_cipher_list_stops_start(make_server):
    srv = make_server(start=False, conf="ssl_cipher_list = NO-SUCH-CIPHER\n")
    out = failed_start(srv)
    assert [l for l in out.splitlines()
            if "fatal" in l and "ssl_cipher_list" in l], out


def test_min_protocol_tls13(make_server):
    srv = make_server(smtps=True, conf="ssl_min_protocol = TLSv1.3\n")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        smtplib.SMTP_SSL("127.0.0.1", srv.smtps_port,
                         context=client_ctx(ssl.TLSVersion.TLSv1_2),
                         timeout=20)
    with smtplib.SMTP_SSL("127.0.0.1", srv.smtps_port, context=client_ctx(),
                          timeout=20) as s:
        assert s.sock.version() == "TLSv1.3"
    # STARTTLS uses the same context.
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=20) as s:
        s.ehlo()
        with pytest.raises((ssl.SSLError, ConnectionError)):
            s.starttls(context=client_ctx(ssl.TLSVersion.TLSv1_2))


def test_cipher_list_for_tls12(make_server):
    cipher = "ECDHE-RSA-AES128-GCM-SHA256"
    srv = make_server(smtps=True, conf="ssl_cipher_list = %s\n" % cipher)
    with smtplib.SMTP_SSL("127.0.0.1", srv.smtps_port,
                          context=client_ctx(ssl.TLSVersion.TLSv1_2),
                          timeout=20) as s:
        assert s.sock.cipher()[0] == cipher
    # The default list would have chosen AES-256 for this client.
    other = make_server(smtps=True)
    with smtplib.SMTP_SSL("127.0.0.1", other.smtps_port,
                          context=client_ctx(ssl.TLSVersion.TLSv1_2),
                          timeout=20) as s:
        assert s.sock.cipher()[0] != cipher
