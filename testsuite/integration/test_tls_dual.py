"""
An RSA and an ECDSA certificate at once: with smtpd_tls_eccert_file
(Postfix) or ssl_alt_cert (Dovecot) next to the first pair, a client that
offers only ECDSA signatures gets the ECDSA certificate and one that
offers only RSA signatures (TLS 1.3, or TLS 1.2 with an ECDHE-RSA suite)
gets the RSA one, on smtps (465), STARTTLS (25) and imaps (993).  A
broken second key stops posternd at start with one line naming it.
"""
import re
import subprocess

import pytest

RSA_CN = "rsa.mail.example.test"
EC_CN = "ec.mail.example.test"

EC_ONLY = ["-sigalgs", "ECDSA+SHA256"]
RSA_ONLY_13 = ["-tls1_3", "-sigalgs", "RSA-PSS+SHA256"]
RSA_ONLY_12 = ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
               "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"]
EC_ONLY_12 = ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
              "-sigalgs", "ECDSA+SHA256"]


def make_pairs(srv):
    """RSA-2048 and ECDSA P-256 pairs in the server's directory."""
    out = {}
    for name, newkey, cn in (("rsa", ["-newkey", "rsa:2048"], RSA_CN),
                             ("ec", ["-newkey", "ec", "-pkeyopt",
                                     "ec_paramgen_curve:P-256"], EC_CN)):
        cert, key = srv.dir / (name + ".crt"), srv.dir / (name + ".key")
        subprocess.run(["openssl", "req", "-x509", "-nodes"] + newkey +
                       ["-keyout", str(key), "-out", str(cert),
                        "-subj", "/CN=" + cn, "-days", "2"],
                       check=True, capture_output=True, timeout=120)
        srv.chown(cert)
        srv.chown(key)
        out[name] = (cert, key)
    return out


def served(port, opts, starttls=None):
    """The CN of the certificate openssl s_client got, and its output."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
            "-servername", "mail.example.test"] + opts
    if starttls:
        argv += ["-starttls", starttls]
    r = subprocess.run(argv, input=b"", capture_output=True, timeout=30)
    out = r.stdout.decode("utf-8", "replace")
    m = re.search(r"^subject=.*CN ?= ?([^,/\s]+)", out, re.M)
    return (m.group(1) if m else None), out


def check_ports(srv):
    for port, starttls in ((srv.smtps_port, None), (srv.smtp_port, "smtp"),
                           (srv.imaps_port, None)):
        cn, out = served(port, EC_ONLY, starttls)
        assert cn == EC_CN, (port, out)
        assert re.search(r"Server public key is 256 bit", out), out
        cn, out = served(port, RSA_ONLY_13, starttls)
        assert cn == RSA_CN, (port, out)
        assert re.search(r"TLSv1\.3", out), out
        cn, out = served(port, RSA_ONLY_12, starttls)
        assert cn == RSA_CN, (port, out)
        assert "ECDHE-RSA-AES128-GCM-SHA256" in out, out
        assert re.search(r"Server public key is 2048 bit", out), out
        cn, out = served(port, EC_ONLY_12, starttls)
        assert cn == EC_CN, (port, out)


POSTFIX_NAMES = ("smtpd_tls_cert_file = {rsa[0]}\n"
                 "smtpd_tls_key_file = {rsa[1]}\n"
                 "smtpd_tls_eccert_file = {ec[0]}\n"
                 "smtpd_tls_eckey_file = {ec[1]}\n")
DOVECOT_NAMES = ("ssl_cert = <{rsa[0]}\n"
                 "ssl_key = <{rsa[1]}\n"
                 "ssl_alt_cert = <{ec[0]}\n"
                 "ssl_alt_key = <{ec[1]}\n")


@pytest.mark.parametrize("names", [POSTFIX_NAMES, DOVECOT_NAMES],
                         ids=["postfix", "dovecot"])
def test_both_certificates_served(make_server, names):
    srv = make_server(start=False, smtps=True, imap=True)
    pairs = make_pairs(srv)
    srv.write_config(names.format(**pairs))
    srv.start()
    check_ports(srv)


def test_first_pair_only_serves_rsa_to_everybody(make_server):
    """Without a second pair an ECDSA-only client gets no certificate:
    what makes the test above able to fail."""
    srv = make_server(start=False, smtps=True)
    pairs = make_pairs(srv)
    srv.write_config(POSTFIX_NAMES.format(**pairs).split(
        "smtpd_tls_eccert_file")[0])
    srv.start()
    cn, out = served(srv.smtps_port, RSA_ONLY_12)
    assert cn == RSA_CN, out
    cn, out = served(srv.smtps_port, EC_ONLY)
    assert cn is None, out


def test_second_pair_survives_reload(make_server):
    srv = make_server(start=False, smtps=True)
    pairs = make_pairs(srv)
    srv.write_config(POSTFIX_NAMES.format(**pairs))
    srv.start()
    assert srv.postern("reload").returncode == 0
    srv.wait_log(r"reload", timeout=20)
    cn, out = served(srv.smtps_port, EC_ONLY)
    assert cn == EC_CN, out
    cn, out = served(srv.smtps_port, RSA_ONLY_12)
    assert cn == RSA_CN, out


def failed_start(srv):
    srv.start(wait=False)
    rc = srv.proc.wait(timeout=30)
    assert rc != 0, srv.log_tail()
    return srv.log()


@pytest.mark.parametrize("names", [POSTFIX_NAMES, DOVECOT_NAMES],
                         ids=["postfix", "dovecot"])
def test_broken_second_key_stops_start(make_server, names):
    srv = make_server(start=False, smtps=True, imap=True)
    pairs = make_pairs(srv)
    bad = srv.write(srv.dir / "bad-ec.key", "-----BEGIN PRIVATE KEY-----\n"
                    "bm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    pairs["ec"] = (pairs["ec"][0], bad)
    srv.write_config(names.format(**pairs))
    out = failed_start(srv)
    lines = [l for l in out.splitlines() if "fatal" in l]
    assert len(lines) == 1, out
    param = "smtpd_tls_eccert_file" if names is POSTFIX_NAMES \
        else "ssl_alt_cert"
    assert param in lines[0] and str(bad) in lines[0], lines


def test_second_pair_of_same_type_stops_start(make_server):
    srv = make_server(start=False)
    pairs = make_pairs(srv)
    pairs["ec"] = pairs["rsa"]
    srv.write_config(POSTFIX_NAMES.format(**pairs))
    out = failed_start(srv)
    lines = [l for l in out.splitlines() if "fatal" in l]
    assert len(lines) == 1 and "another key type" in lines[0], out


def test_second_pair_without_first_stops_start(make_server):
    srv = make_server(start=False)
    pairs = make_pairs(srv)
    srv.write_config("smtpd_tls_eccert_file = %s\n"
                     "smtpd_tls_eckey_file = %s\n" % pairs["ec"])
    out = failed_start(srv)
    lines = [l for l in out.splitlines() if "fatal" in l]
    assert len(lines) == 1, out
    assert "smtpd_tls_eccert_file is set but neither" in lines[0], lines
