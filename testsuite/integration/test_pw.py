"""
Password schemes as a user meets them: `postern pw` prints what `doveadm
pw` prints and checks what doveadm wrote, `postern user add|passwd -s`
stores the scheme asked for, and SMTP AUTH works from each stored scheme:
CRAM-MD5 from {CRAM-MD5} contexts and SCRAM-SHA-256 from {SCRAM-SHA-256}
keys, without the password itself in the file.
"""
import base64
import hashlib
import hmac
import os
import re
import shutil
import smtplib
import ssl
import subprocess

import pytest

from conftest import PASSWORD, wait_for

# `doveadm pw -s CRAM-MD5 -p tanstaaftanstaaf` (Dovecot 2.3.19.1).
DOVEADM_CRAM_TIM = ("{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711f"
                    "b604ca3e035e7015116b")
SCHEMES = ("SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "MD5-CRYPT",
           "CRYPT", "DES-CRYPT", "SCRAM-SHA-256", "CRAM-MD5", "HMAC-MD5",
           "PLAIN", "CLEAR", "CLEARTEXT")
SERVER_OPTIONS = {"conf": "auth_mechanisms = plain login cram-md5 "
                          "scram-sha-256\nauth_failure_delay = 0\n"}
PW = "Pst pw:42\u00e9"          # UTF-8 and a space: any bytes are a password
# smtplib sends passwords as ASCII only.
PW_AUTH = "Pst pw:42!"


def test_pw_cram_md5_as_doveadm(mserver):
    r = mserver.postern("pw", "-s", "CRAM-MD5", "-p", "tanstaaftanstaaf")
    assert r.returncode == 0, r.err
    assert r.out.strip() == DOVEADM_CRAM_TIM


def test_pw_list(mserver):
    r = mserver.postern("pw", "-l")
    assert r.returncode == 0, r.err
    assert set(r.out.split()) == set(SCHEMES), r.out
    r = mserver.postern("pw", "-s", "CRAM", "-p", "x")
    assert r.returncode == 1
    assert "unknown scheme CRAM" in r.err and "CRAM-MD5" in r.err


def test_pw_every_scheme_checks(mserver):
    for scheme in SCHEMES:
        r = mserver.postern("pw", "-s", scheme.lower(), "-p", PW)
        assert r.returncode == 0, (scheme, r.err)
        h = r.out.strip()
        assert h.startswith("{%s}" % scheme), (scheme, h)
        ok = mserver.postern("pw", "-t", h, "-p", PW)
        assert ok.returncode == 0 and ok.out.strip() == h + " (verified)"
        # DES-CRYPT reads 8 characters: change the first one.
        bad = mserver.postern("pw", "-t", h, "-p", "x" + PW)
        assert bad.returncode == 1 and "mismatch" in bad.err, scheme
    r = mserver.postern("pw", "-t", "{NOSUCH}x", "-p", "x")
    assert r.returncode == 1 and "unknown scheme" in r.err
    # Without -p the password is one line of standard input.
    r = mserver.postern("pw", "-s", "PLAIN", input=PW + "\n")
    assert r.out.strip() == "{PLAIN}" + PW


@pytest.mark.skipif(not shutil.which("doveadm"),
                    reason="doveadm (dovecot-core) not installed")
def test_interoperates_with_doveadm(mserver):
    for scheme in SCHEMES:
        ours = mserver.postern("pw", "-s", scheme, "-p", PW).out.strip()
        r = subprocess.run(["doveadm", "pw", "-t", ours, "-p", PW],
                           capture_output=True, text=True, timeout=60)
        assert "(verified)" in r.stdout + r.stderr, (scheme, ours, r)
        r = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", PW],
                           capture_output=True, text=True, timeout=60)
        theirs = r.stdout.strip()
        assert theirs.startswith("{"), (scheme, r)
        r = mserver.postern("pw", "-t", theirs, "-p", PW)
        assert r.returncode == 0, (scheme, theirs, r.err)


def users_line(srv, name):
    for line in (srv.dir / "users").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":")[1]
    return None


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def submission(srv):
    s = smtplib.SMTP("127.0.0.1", srv.submission_port,
                     local_hostname="client.example.test", timeout=30)
    s.ehlo()
    if s.has_extn("starttls"):
        s.starttls(context=client_ctx())
        s.ehlo()
    return s


def auth(srv, mech, user, pw):
    """One SMTP AUTH exchange; the reply code."""
    with submission(srv) as s:
        offered = (s.esmtp_features.get("auth") or "").upper().split()
        if mech not in offered:
            pytest.skip("%s not offered on submission: %s" % (mech, offered))
        if mech == "SCRAM-SHA-256":
            return scram_sha256(s, user, pw)
        s.user, s.password = user, pw
        try:
            code, _ = s.auth(mech, getattr(
                s, "auth_" + mech.lower().replace("-", "_")),
                initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as e:
            code = e.smtp_code
        return code


def scram_sha256(s, user, pw):
    """A SCRAM-SHA-256 client (RFC 5802 §3, RFC 7677) over SMTP AUTH."""
    cnonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = "n=%s,r=%s" % (user, cnonce)
    code, resp = s.docmd("AUTH", "SCRAM-SHA-256 " + base64.b64encode(
        ("n,," + first_bare).encode()).decode())
    if code != 334:
        return code
    server_first = base64.b64decode(resp).decode()
    f = dict(x.split("=", 1) for x in server_first.split(","))
    assert f["r"].startswith(cnonce)
    salted = hashlib.pbkdf2_hmac("sha256", pw.encode(),
                                 base64.b64decode(f["s"]), int(f["i"]))
    ckey = hmac.new(salted, b"Client Key", "sha256").digest()
    skey = hmac.new(salted, b"Server Key", "sha256").digest()
    final_bare = "c=biws,r=" + f["r"]
    am = ",".join((first_bare, server_first, final_bare)).encode()
    sig = hmac.new(hashlib.sha256(ckey).digest(), am, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    code, resp = s.docmd(base64.b64encode(
        (final_bare + ",p=" + base64.b64encode(proof).decode()).encode()
    ).decode())
    if code != 334:
        return code
    # The server proves it knows the keys too (RFC 5802 §3, ServerSignature).
    want = hmac.new(skey, am, "sha256").digest()
    assert base64.b64decode(resp).decode() == \
        "v=" + base64.b64encode(want).decode()
    code, _ = s.docmd("")
    return code


def test_user_add_with_scheme_and_auth(mserver):
    srv = mserver
    r = srv.postern("user", "add", "cramuser", "-s", "CRAM-MD5", "-p",
                    PW_AUTH)
    assert r.returncode == 0, r.err
    stored = users_line(srv, "cramuser")
    assert re.fullmatch(r"\{CRAM-MD5\}[0-9a-f]{64}", stored), stored
    assert PW_AUTH not in (srv.dir / "users").read_text()
    r = srv.postern("user", "add", "-s", "scram-sha-256", "scramuser", "-p",
                    PW_AUTH)
    assert r.returncode == 0, r.err
    stored = users_line(srv, "scramuser")
    assert stored.startswith("{SCRAM-SHA-256}4096,"), stored
    r = srv.postern("user", "add", "nouser", "-s", "NOSUCH", "-p",
                    PW_AUTH)
    assert r.returncode == 1 and "unknown scheme" in r.err
    assert users_line(srv, "nouser") is None

    # CRAM-MD5 from the stored contexts, PLAIN against them too.
    assert auth(srv, "CRAM-MD5", "cramuser", PW_AUTH) == 235
    assert auth(srv, "CRAM-MD5", "cramuser", PW_AUTH + "x") == 535
    assert auth(srv, "PLAIN", "cramuser", PW_AUTH) == 235
    # SCRAM-SHA-256 from the stored keys, PLAIN against them too.
    assert auth(srv, "SCRAM-SHA-256", "scramuser", PW_AUTH) == 235
    assert auth(srv, "SCRAM-SHA-256", "scramuser", PW_AUTH + "x") == 535
    assert auth(srv, "PLAIN", "scramuser", PW_AUTH) == 235
    # A crypt hash serves neither CRAM-MD5 nor SCRAM: they fail like a
    # wrong password, PLAIN works.
    assert auth(srv, "PLAIN", "alice", PASSWORD) == 235
    assert auth(srv, "CRAM-MD5", "alice", PASSWORD) == 535
    assert auth(srv, "SCRAM-SHA-256", "alice", PASSWORD) == 535

    # passwd changes the scheme as asked, and the old password is gone.
    r = srv.postern("user", "passwd", "cramuser", "-s", "SHA256-CRYPT",
                    "-p", PW_AUTH + "2")
    assert r.returncode == 0, r.err
    assert users_line(srv, "cramuser").startswith("{SHA256-CRYPT}$5$")
    assert wait_for(lambda: auth(srv, "PLAIN", "cramuser",
                                 PW_AUTH + "2") == 235, timeout=10)
    assert auth(srv, "PLAIN", "cramuser", PW_AUTH) == 535
