"""
The configuration language as the admin sees it: `postern check`,
`postern config [-n] [NAME...]`, posternd refusing a broken file, and a
Postfix tutorial's main.cf fragment working unchanged.
"""
import re
import socket

from conftest import ENV

TUTORIAL = """\
myhostname = server1.crazytechgeek.info
mydomain = crazytechgeek.info
myorigin = $mydomain
inet_interfaces = all
inet_protocols = all
mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain
mynetworks = 192.168.1.0/24, 127.0.0.0/8
home_mailbox = Maildir/
message_size_limit = 40000000
"""


def config_values(out):
    """{name: value} from `postern config` output ("name = value")."""
    vals = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+) = ?(.*)$", line)
        assert m, "not a 'name = value' line: %r" % line
        vals[m.group(1)] = m.group(2)
    return vals


def expand(value, known):
    """Expand $name / ${name} / $(name) with known values, so a test
    accepts both raw and expanded output of `postern config`."""
    for _ in range(10):
        new = re.sub(r"\$(?:\{(\w+)\}|\((\w+)\)|(\w+))",
                     lambda m: known.get(m.group(1) or m.group(2) or
                                         m.group(3), m.group(0)), value)
        if new == value:
            break
        value = new
    return value


def lookup(srv, names):
    r = srv.postern("config", *names)
    assert r.returncode == 0, r.err
    return config_values(r.out)


def test_check_reports_unknown_name_and_bad_value(make_server):
    srv = make_server(start=False)
    bad = srv.write(srv.dir / "bad.conf",
                    "myhostname = mail.example.test\n"
                    "# a comment\n"
                    "\n"
                    "no_such_parameter_xyz = 1\n"
                    "message_size_limit = 10MBx\n")
    r = srv.run([ENV.postern, "-c", bad, "check"])
    text = r.out + r.err
    assert r.returncode != 0, text
    assert re.search(r"^%s:4: .*no_such_parameter_xyz" % re.escape(str(bad)),
                     text, re.M), text
    assert re.search(r"^%s:5: .*message_size_limit.*10MBx" %
                     re.escape(str(bad)), text, re.M), text


def test_check_reports_syntax_error(make_server):
    srv = make_server(start=False)
    bad = srv.write(srv.dir / "bad.conf",
                    "myhostname = mail.example.test\n"
                    "this line has no equals sign\n")
    r = srv.run([ENV.postern, "-c", bad, "check"])
    assert r.returncode != 0
    assert re.search(r"^%s:2: " % re.escape(str(bad)), r.out + r.err,
                     re.M), r.out + r.err


def test_check_accepts_the_test_config(server):
    r = server.postern("check")
    assert r.returncode == 0, r.out + r.err
    assert "error" not in (r.out + r.err).lower()


def test_posternd_refuses_broken_config_with_same_message(make_server):
    srv = make_server(start=False)
    srv.write_config("no_such_parameter_xyz = 1\n"
                     "message_size_limit = 10MBx\n")
    check = srv.postern("check")
    assert check.returncode != 0
    errors = [l for l in (check.out + check.err).splitlines()
              if l.startswith(str(srv.conf) + ":")]
    assert len(errors) >= 2, check.out + check.err
    r = srv.run([ENV.posternd, "-c", srv.conf, "--foreground"], timeout=30)
    assert r.returncode != 0
    for e in errors:
        assert e in r.out + r.err, (e, r.err)
    # Nothing listens on the configured port.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", srv.smtp_port)) != 0


def test_config_n_prints_only_what_is_set(make_server):
    srv = make_server(start=False)
    only = srv.write(srv.dir / "small.conf",
                     "myhostname = host.example.org\n"
                     "message_size_limit = 12345678\n"
                     "# commented_out = 1\n"
                     "mynetworks = 10.0.0.0/8\n")
    r = srv.run([ENV.postern, "-c", only, "config", "-n"])
    assert r.returncode == 0, r.err
    vals = config_values(r.out)
    assert sorted(vals) == ["message_size_limit", "myhostname",
                            "mynetworks"], r.out
    assert vals["myhostname"] == "host.example.org"
    assert vals["message_size_limit"] == "12345678"
    assert vals["mynetworks"] == "10.0.0.0/8"
    # sorted by name, like postconf -n
    assert list(vals) == sorted(vals)


def test_config_prints_every_parameter(make_server):
    srv = make_server(start=False)
    r = srv.postern("config")
    assert r.returncode == 0, r.err
    vals = config_values(r.out)
    for name in ("myhostname", "mydomain", "myorigin", "mydestination",
                 "inet_interfaces", "message_size_limit", "queue_directory",
                 "mail_location", "smtp_listen", "alias_maps",
                 "smtpd_recipient_limit", "maximal_queue_lifetime"):
        assert name in vals, name
    assert vals["queue_directory"] == str(srv.spool)
    assert vals["smtpd_recipient_limit"] == "1000"
    assert vals["message_size_limit"] == "10240000"


def test_mydomain_derived_from_myhostname(make_server):
    srv = make_server(start=False)
    c = srv.write(srv.dir / "d.conf", "myhostname = mx1.branch.example.org\n")
    r = srv.run([ENV.postern, "-c", c, "config", "mydomain", "myorigin",
                 "mydestination"])
    assert r.returncode == 0, r.err
    vals = config_values(r.out)
    known = {"myhostname": "mx1.branch.example.org",
             "mydomain": "branch.example.org"}
    assert vals["mydomain"] == "branch.example.org"
    assert expand(vals["myorigin"], known) == "mx1.branch.example.org"
    assert expand(vals["mydestination"], known) == \
        "mx1.branch.example.org, localhost.branch.example.org, localhost"


def test_tutorial_fragment_works_unchanged(make_server):
    srv = make_server(start=False)
    c = srv.write(srv.dir / "tutorial.conf",
                  TUTORIAL +
                  "alias_maps = hash:%s/aliases\n" % srv.dir +
                  "alias_database = hash:%s/aliases\n" % srv.dir)
    r = srv.run([ENV.postern, "-c", c, "check"])
    assert r.returncode == 0, r.out + r.err
    names = ["myhostname", "mydomain", "myorigin", "inet_interfaces",
             "inet_protocols", "mydestination", "mynetworks", "home_mailbox",
             "message_size_limit", "mail_location"]
    r = srv.run([ENV.postern, "-c", c, "config"] + names)
    assert r.returncode == 0, r.err
    vals = config_values(r.out)
    known = {"myhostname": "server1.crazytechgeek.info",
             "mydomain": "crazytechgeek.info"}
    assert vals["myhostname"] == "server1.crazytechgeek.info"
    assert vals["mydomain"] == "crazytechgeek.info"
    assert expand(vals["myorigin"], known) == "crazytechgeek.info"
    assert vals["inet_interfaces"] == "all"
    assert vals["inet_protocols"] == "all"
    assert expand(vals["mydestination"], known) == (
        "server1.crazytechgeek.info, localhost.crazytechgeek.info, "
        "localhost, crazytechgeek.info")
    assert vals["mynetworks"] == "192.168.1.0/24, 127.0.0.0/8"
    assert vals["home_mailbox"] == "Maildir/"
    assert vals["message_size_limit"] == "40000000"
    # home_mailbox = Maildir/ names the one store: ~/Maildir as a Maildir.
    assert vals["mail_location"] == "maildir:~/Maildir"


def test_home_mailbox_and_mail_location_conflict(make_server):
    srv = make_server(start=False)
    c = srv.write(srv.dir / "c.conf",
                  "home_mailbox = Maildir/\n"
                  "mail_location = mbox:~/mail:INBOX=/var/mail/%u\n")
    r = srv.run([ENV.postern, "-c", c, "check"])
    assert r.returncode != 0
    assert "home_mailbox" in r.out + r.err


def test_continuation_lines_and_comments(make_server):
    srv = make_server(start=False)
    c = srv.write(srv.dir / "cont.conf",
                  "myhostname = mail.example.test\n"
                  "mydestination = $myhostname,\n"
                  "    localhost,\n"
                  "\tother.example\n"
                  "# a comment line\n"
                  "mynetworks = 10.1.0.0/16\n"
                  "   10.2.0.0/16\n")
    r = srv.run([ENV.postern, "-c", c, "config", "mydestination",
                 "mynetworks"])
    assert r.returncode == 0, r.err
    vals = config_values(r.out)
    known = {"myhostname": "mail.example.test"}
    assert expand(vals["mydestination"], known) == \
        "mail.example.test, localhost, other.example"
    assert vals["mynetworks"] == "10.1.0.0/16 10.2.0.0/16"


def test_last_setting_wins(make_server):
    srv = make_server(start=False)
    c = srv.write(srv.dir / "twice.conf",
                  "message_size_limit = 1000\n"
                  "message_size_limit = 2000\n")
    vals = config_values(srv.run([ENV.postern, "-c", c, "config",
                                  "message_size_limit"]).out)
    assert vals["message_size_limit"] == "2000"


def test_dollar_expansion_in_banner(make_server):
    """$name, ${name}, $(name), ${name?x}, ${name:x} and $$ as the SMTP
    client sees them."""
    srv = make_server(conf=(
        "mail_name = TestMail\n"
        "smtpd_banner = ${myhostname} $(mail_name) $mydomain "
        "${mail_name?yes} ${relayhost:none} ${relayhost?never} cost=$$5\n"),
        start=False)
    srv.start()
    banner = srv.wait_ready()
    assert banner == ("220 mail.example.test TestMail example.test yes none "
                      " cost=$5")


def test_unknown_dollar_name_is_reported(make_server):
    srv = make_server(start=False)
    c = srv.write(srv.dir / "u.conf",
                  "myhostname = mail.example.test\n"
                  "smtpd_banner = $myhostname $nosuchname_xyz\n")
    r = srv.run([ENV.postern, "-c", c, "check"])
    assert re.search(r"^%s:2: .*\$nosuchname_xyz.*smtpd_banner" %
                     re.escape(str(c)), r.out + r.err, re.M), r.out + r.err
