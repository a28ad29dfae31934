"""
Certificates change without a restart: after the admin replaces the
certificate and key files and runs `postern reload`, new connections on
every TLS port get the new certificate (sessions already open keep
theirs).  In root mode the key may be readable by root only, as keys in
/etc/ssl/private are: every service still gets it.
"""
import os
import socket
import ssl
import subprocess
import time

import pytest

from conftest import PASSWORD, WAIT, requires_root, wait_for


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def new_pair(cn, cert, key):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert),
                    "-subj", "/CN=%s" % cn, "-days", "2"],
                   check=True, capture_output=True, timeout=120)


def peer_cert(port, starttls=None):
    """The DER certificate the server presents on port."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        if starttls == "smtp":
            f = sock.makefile("rb")
            assert f.readline().startswith(b"220")
            sock.sendall(b"EHLO client.example.test\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            sock.sendall(b"STARTTLS\r\n")
            assert f.readline().startswith(b"220")
        with client_ctx().wrap_socket(sock) as tls:
            return tls.getpeercert(binary_form=True)
    finally:
        sock.close()


def cn_of(der):
    pem = ssl.DER_cert_to_PEM_cert(der)
    out = subprocess.run(["openssl", "x509", "-noout", "-subject"],
                         input=pem.encode(), capture_output=True,
                         check=True).stdout.decode()
    return out.strip().split("CN", 1)[1].lstrip(" =")


def ports(srv):
    return [(srv.smtps_port, None), (srv.smtp_port, "smtp"),
            (srv.imaps_port, None), (srv.pop3s_port, None)]


def test_reload_picks_up_replaced_certificate(make_server):
    srv = make_server(start=False, smtps=True, imap=True, pop3=True)
    cert, key = srv.dir / "site.crt", srv.dir / "site.key"
    new_pair("old.example.test", cert, key)
    srv.chown(cert)
    srv.chown(key)
    srv.write_config("ssl_cert = <%s\nssl_key = <%s\n" % (cert, key))
    srv.start()
    for port, how in ports(srv):
        assert cn_of(peer_cert(port, how)) == "old.example.test", port
    # The admin renews the certificate in place (as certbot's deploy
    # hook does) and reloads.
    tmpc, tmpk = srv.dir / "new.crt", srv.dir / "new.key"
    new_pair("new.example.test", tmpc, tmpk)
    srv.chown(tmpc)
    srv.chown(tmpk)
    os.replace(tmpc, cert)
    os.replace(tmpk, key)
    r = srv.postern("reload")
    assert r.returncode == 0, r.stderr
    for port, how in ports(srv):
        assert wait_for(lambda: cn_of(peer_cert(port, how)) ==
                        "new.example.test"), port


@requires_root
def test_root_only_key_serves_every_port(make_server, root_users):
    """A key readable by root only (0600 root:root, like
    /etc/ssl/private): posternd starts, and SMTP STARTTLS, SMTPS, IMAPS
    and POP3S all present the configured certificate."""
    srv = make_server(start=False, root_mode=True, system_users=root_users,
                      smtps=True, imap=True, pop3=True)
    d = srv.dir / "private"
    d.mkdir(mode=0o700)
    cert, key = srv.dir / "site.crt", d / "site.key"
    new_pair("rootkey.example.test", cert, key)
    os.chmod(key, 0o600)
    os.chown(key, 0, 0)
    srv.write_config("smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n"
                     "ssl_cert = <%s\nssl_key = <%s\n" % (cert, key, cert,
                                                          key))
    srv.start()
    for port, how in ports(srv):
        assert cn_of(peer_cert(port, how)) == "rootkey.example.test", port
    # No service complained about the key.
    assert not srv.log_lines(r"site\.key.*(denied|cannot|error)"), \
        srv.log_tail()
