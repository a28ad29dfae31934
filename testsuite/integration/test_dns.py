"""
DNS lookups of common/dns.c (through the dnsq test program) against a
DNS server of the test's own (fakedns.py): MX order and randomisation,
null MX, missing MX, NXDOMAIN, SERVFAIL and timeouts, address families,
IP literals, TXT, PTR, CNAME chains, and broken answers.
"""
import concurrent.futures
import subprocess
import time

import pytest

from conftest import BUILDDIR

DNSQ = BUILDDIR / "testsuite" / "unit" / "dnsq"

TEMPFAIL_WHY = ("why: Host or domain name not found. Name service error: "
                "Host not found, try again")


def dnsq(dns, *args, conf=(), tmp_path=None, timeout=60):
    """Run dnsq with a postern.conf pointing at dns; returns
    (result lines, status, exit code)."""
    if not DNSQ.exists():
        pytest.fail("not built: %s" % DNSQ, pytrace=False)
    lines = [dns.conf_line()] if dns is not None else []
    lines += list(conf)
    cf = tmp_path / ("postern-%d.conf" % time.monotonic_ns())
    cf.write_text("\n".join(lines) + "\n")
    r = subprocess.run([str(DNSQ), "-c", str(cf)] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode in (0, 1), (r.returncode, r.stdout, r.stderr)
    out = r.stdout.splitlines()
    assert out and out[-1].startswith("status: "), r.stdout
    return out[:-1], out[-1][len("status: "):], r.returncode


def results(out):
    return [line for line in out if not line.startswith("why: ")]


@pytest.fixture
def q(fakedns, tmp_path):
    def run(*args, conf=(), timeout=60):
        return dnsq(fakedns, *args, conf=conf, tmp_path=tmp_path,
                    timeout=timeout)
    return run


def test_mx_sorted_by_preference(fakedns, q):
    fakedns.set("example.test", "MX",
                [(30, "mx3.example.test"), "10 mx1.example.test.",
                 (20, "MX2.Example.Test")])
    out, st, rc = q("mx", "example.test")
    assert (st, rc) == ("ok", 0)
    assert out == ["10 mx1.example.test", "20 MX2.Example.Test",
                   "30 mx3.example.test"]
    # A trailing dot on the query name is the same name.
    out, st, _ = q("mx", "Example.TEST.")
    assert st == "ok" and len(out) == 3


def test_mx_equal_preferences_in_random_order(fakedns, q):
    hosts = ["a.example.test", "b.example.test", "c.example.test"]
    fakedns.set("example.test", "MX",
                [(10, h) for h in hosts] + [(5, "first.example.test"),
                                            (50, "last.example.test")])
    orders = set()
    for _ in range(25):
        out, st, _ = q("mx", "example.test")
        assert st == "ok"
        assert out[0] == "5 first.example.test"
        assert out[-1] == "50 last.example.test"
        middle = tuple(line.split()[1] for line in out[1:4])
        assert sorted(middle) == hosts
        orders.add(middle)
    # 25 runs of a 3! shuffle: one order only happens with p < 1e-18.
    assert len(orders) > 1


def test_null_mx(fakedns, q):
    fakedns.set("nomail.test", "MX", ["0 ."])
    out, st, rc = q("mx", "nomail.test")
    assert (st, rc) == ("nullmx", 1)
    assert out == ["why: Domain does not accept mail (null MX, RFC 7505)"]


def test_no_mx_is_notfound_and_host_has_addresses(fakedns, q):
    fakedns.set("plain.test", "A", ["192.0.2.7"])
    out, st, _ = q("mx", "plain.test")
    assert st == "notfound"
    assert out == ["why: Host found but no data record of the requested "
                   "type"]
    out, st, _ = q("host", "plain.test")
    assert (out, st) == (["192.0.2.7"], "ok")


def test_nxdomain(fakedns, q):
    out, st, rc = q("mx", "nosuch.test")
    assert (st, rc) == ("notfound", 1)
    assert out == ["why: Host not found"]
    out, st, _ = q("host", "nosuch.test")
    assert (out, st) == (["why: Host not found"], "notfound")
    # NXDOMAIN on A: no AAAA question after it.
    assert fakedns.queried("nosuch.test", "AAAA") == 0


def test_servfail_is_tempfail(fakedns, q):
    fakedns.servfail("broken.test")
    for what in ("mx", "host", "a", "txt"):
        out, st, _ = q(what, "broken.test")
        assert (out, st) == ([TEMPFAIL_WHY], "tempfail"), what


def test_refused_is_tempfail(fakedns, q):
    fakedns.garbage("refused.test", "refused")
    out, st, _ = q("mx", "refused.test")
    assert (out, st) == ([TEMPFAIL_WHY], "tempfail")


def test_timeout_is_tempfail_and_bounded(fakedns, q):
    fakedns.drop("silent.test")
    for what in ("mx", "host"):
        t0 = time.monotonic()
        out, st, _ = q(what, "silent.test", timeout=30)
        took = time.monotonic() - t0
        assert (out, st) == ([TEMPFAIL_WHY], "tempfail"), what
        assert took < 10, "%s took %.1f s" % (what, took)
        # It did wait for the server and asked it again.
        assert fakedns.queried("silent.test") >= 2


def test_no_server_at_all_is_tempfail(tmp_path, fakedns):
    port = fakedns.port
    fakedns.stop()
    cf = tmp_path / "p.conf"
    cf.write_text("dns_servers = [127.0.0.1]:%d\n" % port)
    t0 = time.monotonic()
    r = subprocess.run([str(DNSQ), "-c", str(cf), "mx", "example.test"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.splitlines()[-1] == "status: tempfail"
    assert time.monotonic() - t0 < 10


def test_addresses_follow_inet_protocols(fakedns, q):
    fakedns.set("dual.test", "A", ["192.0.2.1", "192.0.2.2"])
    fakedns.set("dual.test", "AAAA", ["2001:db8::1"])
    v4 = ["192.0.2.1", "192.0.2.2"]
    out, st, _ = q("host", "dual.test")
    assert st == "ok" and out == v4 + ["2001:db8::1"]
    out, st, _ = q("host", "dual.test", conf=["inet_protocols = ipv4"])
    assert (out, st) == (v4, "ok")
    assert fakedns.queried("dual.test", "AAAA") == 1   # first run only
    out, st, _ = q("host", "dual.test", conf=["inet_protocols = ipv6"])
    assert (out, st) == (["2001:db8::1"], "ok")
    out, st, _ = q("-f", "4", "host", "dual.test")
    assert (out, st) == (v4, "ok")
    out, st, _ = q("-f", "6", "host", "dual.test",
                   conf=["inet_protocols = ipv4"])
    assert st == "notfound"
    out, st, _ = q("host", "dual.test",
                   conf=["smtp_address_preference = ipv6"])
    assert (out, st) == (["2001:db8::1"] + v4, "ok")
    # No AAAA record: IPv4 only, still ok.
    fakedns.set("v4only.test", "A", ["192.0.2.9"])
    out, st, _ = q("host", "v4only.test")
    assert (out, st) == (["192.0.2.9"], "ok")


def test_ip_literals_need_no_query(fakedns, q):
    for lit, want in (("192.0.2.55", "192.0.2.55"),
                      ("[192.0.2.56]", "192.0.2.56"),
                      ("2001:db8::5", "2001:db8::5"),
                      ("[IPv6:2001:db8::6]", "2001:db8::6")):
        out, st, _ = q("host", lit)
        assert (out, st) == ([want], "ok"), lit
    assert fakedns.queries == []
    out, st, _ = q("host", "2001:db8::5", conf=["inet_protocols = ipv4"])
    assert st == "notfound"
    assert out == ["why: Address family not enabled by inet_protocols"]


def test_native_lookups_skip_dns(fakedns, q):
    for conf in (["disable_dns_lookups = yes"],
                 ["smtp_host_lookup = native"]):
        out, st, _ = q("mx", "example.test", conf=conf)
        assert st == "notfound", conf
        out, st, _ = q("host", "localhost", conf=conf)
        assert st == "ok" and "127.0.0.1" in out, conf
    assert fakedns.queries == []
    # "dns, native": DNS first, /etc/hosts when DNS knows nothing.
    out, st, _ = q("host", "localhost",
                   conf=["smtp_host_lookup = dns, native",
                         "inet_protocols = ipv4"])
    assert (out, st) == (["127.0.0.1"], "ok")
    assert fakedns.queried("localhost", "A") == 1


def test_txt_strings_joined(fakedns, q):
    fakedns.set("spf.test", "TXT",
                [["v=spf1 ip4:192.0.2.0/24", " -all"], "second record"])
    out, st, _ = q("txt", "spf.test")
    assert st == "ok"
    assert sorted(out) == ["second record", "v=spf1 ip4:192.0.2.0/24 -all"]
    # A long record comes back cut at DNS_MAX_TXT (512) bytes; control
    # bytes never reach the caller.
    fakedns.set("long.test", "TXT", "y" * 300 + "z" * 600)
    fakedns.set("ctl.test", "TXT", "bad\r\n550 text")
    out, st, _ = q("txt", "long.test")
    assert st == "ok" and out == ["y" * 300 + "z" * 212]
    out, st, _ = q("txt", "ctl.test")
    assert (out, st) == (["bad??550 text"], "ok")


def test_dnsbl_a_records(fakedns, q):
    fakedns.set("2.0.0.127.zen.test", "A", ["127.0.0.2", "127.0.0.10"])
    out, st, _ = q("a", "2.0.0.127.zen.test")
    assert (sorted(out), st) == (["127.0.0.10", "127.0.0.2"], "ok")
    out, st, _ = q("a", "3.0.0.127.zen.test")
    assert (out, st) == (["why: Host not found"], "notfound")


def test_ptr(fakedns, q):
    fakedns.set("1.2.0.192.in-addr.arpa", "PTR", "client.example.test.")
    out, st, _ = q("ptr", "192.0.2.1")
    assert (out, st) == (["client.example.test"], "ok")
    nibbles = ".".join(reversed("20010db8" + "0" * 23 + "1"))
    fakedns.set(nibbles + ".ip6.arpa", "PTR", "v6.example.test")
    out, st, _ = q("ptr", "2001:db8::1")
    assert (out, st) == (["v6.example.test"], "ok")
    # IPv4-mapped client of a dual-stack socket: the IPv4 name.
    out, st, _ = q("ptr", "::ffff:192.0.2.1")
    assert (out, st) == (["client.example.test"], "ok")
    out, st, _ = q("ptr", "192.0.2.99")
    assert st == "notfound"
    # A name that is not a host name is not handed to the caller.
    fakedns.set("2.2.0.192.in-addr.arpa", "PTR", "bad name.example.test")
    out, st, _ = q("ptr", "192.0.2.2")
    assert st == "fail"


def test_cname_chain(fakedns, q):
    fakedns.set("www.test", "CNAME", "alias.test")
    fakedns.set("alias.test", "CNAME", "real.test")
    fakedns.set("real.test", "A", ["192.0.2.80"])
    fakedns.set("real.test", "MX", [(10, "mx.real.test")])
    out, st, _ = q("host", "www.test", conf=["inet_protocols = ipv4"])
    assert (out, st) == (["192.0.2.80"], "ok")
    out, st, _ = q("mx", "www.test")
    assert (out, st) == (["10 mx.real.test"], "ok")
    # A chain that leaves our zone has no records at its end.
    fakedns.set("away.test", "CNAME", "elsewhere.invalid")
    out, st, _ = q("a", "away.test")
    assert st == "notfound"


def test_large_answer_over_tcp(fakedns, q):
    mx = [(i, "mail-exchanger-number-%02d.example.test" % i)
          for i in range(40)]
    fakedns.set("big.test", "MX", mx)
    out, st, _ = q("mx", "big.test")
    assert st == "ok"
    assert out == ["%d %s" % m for m in mx]
    assert fakedns.queried("big.test", "MX", "tcp") == 1


def test_huge_answers_are_capped(fakedns, q):
    fakedns.garbage("huge.test", "huge")
    out, st, _ = q("mx", "huge.test")
    assert st == "ok" and len(out) == 100
    prefs = [int(line.split()[0]) for line in out]
    assert prefs == sorted(prefs)
    out, st, _ = q("a", "huge.test")
    assert st == "ok" and len(out) == 100
    out, st, _ = q("txt", "huge.test")
    assert st == "ok" and len(out) == 80
    assert all(len(t) == 512 for t in out)


def test_broken_answers_never_crash(fakedns, q):
    kinds = ("short", "badrdlen", "cutrr", "ptrloop", "badcount",
             "cnameloop", "wrongid", "random", "badtxt")
    for k in kinds:
        fakedns.garbage(k + ".bad.test", k)
    jobs = [(what, k) for k in kinds for what in ("mx", "a", "txt", "host")]
    # In parallel: some of them wait for a timeout.
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as ex:
        futs = {ex.submit(q, what, k + ".bad.test", timeout=30): (what, k)
                for what, k in jobs}
        for f, job in futs.items():
            out, st, rc = f.result()    # dnsq exited 0/1: no crash
            assert st in ("fail", "tempfail"), (job, out, st)
            assert rc == 1


def test_malformed_names_are_not_asked(fakedns, q):
    for name in ("a..test", "x" * 64 + ".test", "sp ace.test",
                 ".".join(["abcdefghi"] * 30)):
        out, st, _ = q("mx", name)
        assert (out, st) == (["why: Malformed domain name"], "fail"), name
    assert fakedns.queries == []


def test_bad_dns_servers_value(tmp_path):
    for bad in ("dns_servers = not-an-ip",
                "dns_servers = [127.0.0.1]:99999",
                "dns_servers = 127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.4"):
        cf = tmp_path / "p.conf"
        cf.write_text(bad + "\n")
        r = subprocess.run([str(DNSQ), "-c", str(cf), "mx", "x.test"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, bad
        assert "dns_servers" in r.stderr, bad


def test_second_server_answers_when_first_is_silent(fakedns, tmp_path):
    from fakedns import FakeDNS
    fakedns.drop("h.test")
    good = FakeDNS().start()
    try:
        good.set("h.test", "A", ["192.0.2.33"])
        cf = tmp_path / "p.conf"
        cf.write_text("dns_servers = [127.0.0.1]:%d [127.0.0.1]:%d\n"
                      "inet_protocols = ipv4\n" % (fakedns.port, good.port))
        t0 = time.monotonic()
        r = subprocess.run([str(DNSQ), "-c", str(cf), "host", "h.test"],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.splitlines() == ["192.0.2.33", "status: ok"]
        assert time.monotonic() - t0 < 10
        assert fakedns.queried("h.test") >= 1
    finally:
        good.stop()
