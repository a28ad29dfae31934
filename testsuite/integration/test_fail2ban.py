"""
The fail2ban filter (etc/fail2ban/filter.d/postern.conf) run through
fail2ban-regex: one match per failed login, with the client's address,
on lines in the documented format and on the log of a real server after
failed SMTP AUTH attempts.  Skipped when fail2ban-regex is not installed.
"""
import os
import shutil
import smtplib
import ssl
import subprocess
import time

import pytest

from conftest import PASSWORD, SRCDIR, wait_for

FILTER = SRCDIR / "etc" / "fail2ban" / "filter.d" / "postern.conf"
JAIL = SRCDIR / "etc" / "fail2ban" / "jail.d" / "postern.conf"
# fail2ban's shared prefix definitions, which the filter includes.
COMMON = ("/etc/fail2ban/filter.d/common.conf",
          "/usr/local/etc/fail2ban/filter.d/common.conf")
# The address the test clients connect from: loopback, but not the
# server's own 127.0.0.1, so a wrong address in a match shows.
CLIENT_IP = "127.0.0.2"


@pytest.fixture
def regex(tmp_path):
    """fail2ban-regex with our filter: returns run(log_path) -> [ip per
    match]."""
    exe = shutil.which("fail2ban-regex")
    common = next((c for c in COMMON if os.path.exists(c)), None)
    if exe is None or common is None:
        pytest.skip("fail2ban-regex is not installed")
    # fail2ban resolves "before = common.conf" next to the filter.
    fdir = tmp_path / "fail2ban" / "filter.d"
    fdir.mkdir(parents=True)
    shutil.copy(common, fdir / "common.conf")
    shutil.copy(FILTER, fdir / "postern.conf")

    def run(log):
        r = subprocess.run([exe, "-o", "ip", str(log),
                            str(fdir / "postern.conf")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return [l.strip() for l in r.stdout.splitlines() if l.strip()]
    return run


DOCUMENTED = """\
Nov 23 19:30:00 mx postern/smtpd[1234]: connect from unknown[192.0.2.10]
Nov 23 19:30:00 mx postern/smtpd[1234]: warning: unknown[192.0.2.10]: SASL PLAIN authentication failed: authentication failure
Nov 23 19:30:00 mx postern/auth[99]: auth failed: user=<bob>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, service=smtp
Nov 23 19:30:01 mx postern/smtpd[1234]: warning: client.example[2001:db8::7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6
Nov 23 19:30:01 mx postern/auth[99]: auth failed: user=<bob>, method=LOGIN, rip=2001:db8::7, lip=2001:db8::1, service=smtp
Nov 23 19:30:02 mx postern/smtpd[1234]: warning: unknown[192.0.2.11]: SASL CRAM-MD5 authentication failed
Nov 23 19:30:02 mx postern/auth[99]: auth failed: user=<carol>, method=CRAM-MD5, rip=192.0.2.11, lip=192.0.2.1, service=smtp
Nov 23 19:30:03 mx postern/auth[99]: auth failed: user=<dave>, method=PLAIN, rip=192.0.2.12, lip=192.0.2.1, service=imap
Nov 23 19:30:04 mx postern/auth[99]: auth failed: user=<eve>, method=SCRAM-SHA-256, rip=192.0.2.13, lip=192.0.2.1, service=pop3
Nov 23 19:30:05 mx postern/auth[99]: auth failed: user=<x>, method=PLAIN, rip=192.0.2.66, lip=192.0.2.1, service=pop3>, method=PLAIN, rip=192.0.2.14, lip=192.0.2.1, service=imap, reason=authentication failed
Nov 23 19:30:05 mx postern/auth[99]: auth failed: user=<x>, method=PLAIN, rip=192.0.2.68, lip=192.0.2.1, service=imap>, method=PLAIN, rip=192.0.2.21, lip=192.0.2.1, service=smtp
Nov 23 19:30:06 postern/smtpd[1234]: warning: unknown[192.0.2.15]: SASL PLAIN authentication failed: authentication failure
Nov 23 19:30:07 mx postern/smtpd[1234]: 4Xk2abcdEFGH: client=unknown[192.0.2.16], sasl_method=PLAIN, sasl_username=bob
Nov 23 19:30:07 mx postern/auth[99]: login: user=<bob>, method=PLAIN, rip=192.0.2.16, lip=192.0.2.1, service=smtp
Nov 23 19:30:08 mx postern/smtpd[1234]: warning: unknown[192.0.2.17]: SASL PLAIN authentication aborted
Nov 23 19:30:09 mx postfix/smtpd[77]: warning: unknown[192.0.2.18]: SASL PLAIN authentication failed: x
"""


def test_documented_lines(regex, tmp_path):
    """Each failure once (smtpd's line for SMTP, auth's for IMAP/POP3),
    successes and aborted exchanges never, and a user name that mimics
    the fields after it does not choose the address."""
    log = tmp_path / "mail.log"
    log.write_text(DOCUMENTED)
    assert regex(log) == ["192.0.2.10", "2001:db8::7", "192.0.2.11",
                          "192.0.2.12", "192.0.2.13", "192.0.2.14",
                          "192.0.2.15"]


def f2b_config(tmp_path, local=None):
    """A copy of the system's fail2ban configuration without its jails,
    plus our filter and jail (and jail.d/postern.local when given)."""
    client = shutil.which("fail2ban-client")
    if client is None or not os.path.isdir("/etc/fail2ban/filter.d"):
        pytest.skip("fail2ban is not installed")
    cdir = tmp_path / "etc-fail2ban"
    shutil.copytree("/etc/fail2ban", cdir, symlinks=True)
    for f in (cdir / "jail.d").iterdir():
        f.unlink()
    shutil.copy(FILTER, cdir / "filter.d" / "postern.conf")
    shutil.copy(JAIL, cdir / "jail.d" / "postern.conf")
    if local is not None:
        (cdir / "jail.d" / "postern.local").write_text(local)
    r = subprocess.run([client, "-c", str(cdir), "-d"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_jail_shipped_disabled(tmp_path):
    dump = f2b_config(tmp_path)
    assert "'postern'" not in dump, dump


def test_jail_enabled_by_local_file(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text(DOCUMENTED)
    dump = f2b_config(tmp_path, "[postern]\nenabled = true\n"
                      "logpath = %s\n" % log)
    assert "['start', 'postern']" in dump, dump
    assert "['set', 'postern', 'addlogpath', '%s', 'head']" % log in dump
    assert "['set', 'postern', 'maxretry', 5]" in dump
    # The jail's filter is ours: its failregex names Postern's services.
    assert "postern/(?:smtpd|auth)" in dump
    for port in ("submission", "submissions", "imaps", "pop3s"):
        assert port in dump, port


# ------------------------------------------------ a real server's log

def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def submission(srv):
    """An SMTP session on the submission port from CLIENT_IP, in TLS when
    offered; returns it after EHLO."""
    s = smtplib.SMTP("127.0.0.1", srv.submission_port,
                     local_hostname="client.example.test", timeout=60,
                     source_address=(CLIENT_IP, 0))
    s.ehlo()
    if s.has_extn("starttls"):
        s.starttls(context=client_ctx())
        s.ehlo()
    return s


def known_param(srv, name):
    r = srv.postern("config", name)
    return r.returncode == 0 and "unknown" not in (r.out + r.err).lower()


def test_real_smtp_auth_failures(regex, make_server):
    srv = make_server(start=False)
    # No growing failure delay: the test makes several failures from
    # one address on purpose.
    if known_param(srv, "auth_failure_delay"):
        srv.write_config("auth_failure_delay = 0\n")
    srv.start()
    with submission(srv) as s:
        mechs = (s.esmtp_features.get("auth") or "").upper().split()
    if not mechs:
        pytest.skip("smtpd does not offer AUTH on the submission port yet")

    assert "PLAIN" in mechs or "LOGIN" in mechs, mechs
    tried = []
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
        if mech not in mechs:
            continue
        with submission(srv) as s:
            s.user, s.password = "alice", "wrong-" + PASSWORD
            auth = getattr(s, "auth_" + mech.lower().replace("-", "_"))
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                s.auth(mech, auth, initial_response_ok=True)
            assert e.value.smtp_code == 535, e.value
            tried.append(mech)
    # An unknown user fails the same way and counts the same.  (Not
    # s.login(): it tries the next mechanism after a failure.)
    with submission(srv) as s:
        s.user, s.password = "nosuchuser", PASSWORD
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.auth(tried[0], getattr(s, "auth_" + tried[0].lower()),
                   initial_response_ok=True)
    tried.append("unknown user")
    # A good login is not a failure.
    with submission(srv) as s:
        s.user, s.password = "alice", PASSWORD
        code, _ = s.auth(tried[0], getattr(s, "auth_" + tried[0].lower()),
                         initial_response_ok=True)
        assert code == 235

    srv.wait_log(r"warning: \S+\[%s\]: SASL \S+ authentication failed" %
                 CLIENT_IP.replace(".", r"\."), count=len(tried))
    time.sleep(0.5)             # any further line for the same failures
    ips = wait_for(lambda: (lambda x: x if len(x) >= len(tried) else None)(
        regex(srv.log_path)))
    assert ips == [CLIENT_IP] * len(tried), (tried, ips, srv.log_tail())
