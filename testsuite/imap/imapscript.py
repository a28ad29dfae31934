"""
imapscript: run a scripted IMAP conversation against a server and check
every response line exactly (the scripted conformance suite of
testsuite/imap/*.imap; STYLE §8 "Protocol conversations as scripts").

Script format, one directive a line:

  # text                  a comment; blank lines are ignored
  C: text                 send text + CRLF on the current connection
  C! text                 send text without a line end (\\r \\n \\0 and
                          \\xHH escapes are decoded)
  S: text                 the next response line is exactly text
  S! text                 the next response line is exactly these bytes
                          (escapes as for C!)
  S~ regex                the next response line matches regex (Python
                          re.fullmatch); named groups become variables
  S* text                 skip response lines until one is exactly text
  CLOSED                  the server closes the connection now
  CONNECT [n]             open connection n (default 1) and read the
                          greeting; later lines act on it
  USE n                   make connection n the current one
  LOGIN                   LOGIN as the script's user (expects OK)
  APPEND mailbox [flags]  the message lines up to a line "." are
                          APPENDed with LITERAL+ (expects OK)
  DELIVER subject         deliver a message to the script's user over
                          SMTP (through the harness)
  SLEEP seconds
  REPEAT n C: text        send the same line n times
  C* n text               send text n times, no line end (long lines)

$user, $password, $plain (SASL PLAIN response in base64), $user64,
$password64 and $name of captured groups are replaced in C:, C!,
S: and S* lines ($$ is a "$"; other $words stay as they are, for
keywords like $Forwarded).  A mismatch raises ScriptError with
the script line and what the server said.
"""
import base64
import re
import socket
import time

WAIT = 20


class ScriptError(AssertionError):
    pass


class Conn:
    def __init__(self, port, timeout=WAIT):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        return self.rawline().decode("utf-8", "replace")

    def rawline(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise ScriptError("no response within %ds; pending %r" %
                                  (WAIT, self.buf))
            if not chunk:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        if not raw.endswith(b"\r"):
            raise ScriptError("line without CRLF: %r" % raw)
        return raw[:-1]

    def closed(self):
        if self.buf:
            return False
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _unescape(text):
    out = bytearray()
    i = 0
    raw = text.encode()
    while i < len(raw):
        c = raw[i:i + 1]
        if c == b"\\" and i + 1 < len(raw):
            n = raw[i + 1:i + 2]
            if n == b"r":
                out += b"\r"
            elif n == b"n":
                out += b"\n"
            elif n == b"0":
                out += b"\0"
            elif n == b"x":
                out += bytes([int(raw[i + 2:i + 4], 16)])
                i += 2
            else:
                out += n
            i += 2
            continue
        out += c
        i += 1
    return bytes(out)


def run_script(text, port, user, password, deliver=None, name="script"):
    """Run the script text against the IMAP port.  deliver(subject) is
    called for DELIVER lines.  Returns the number of checked lines."""
    conns = {}
    cur = None
    vars_ = {"user": user, "password": password,
             "plain": base64.b64encode(b"\0" + user.encode() + b"\0" +
                                       password.encode()).decode(),
             "user64": base64.b64encode(user.encode()).decode(),
             "password64": base64.b64encode(password.encode()).decode()}
    checked = 0
    tagn = [0]

    def expand(s):
        def sub(m):
            k = m.group(1)
            if k == "$":
                return "$"
            if k not in vars_:
                return m.group(0)   # "$Work" is a keyword, not ours
            return str(vars_[k])
        return re.sub(r"\$(\$|[A-Za-z_][A-Za-z0-9_]*)", sub, s)

    lines = text.split("\n")
    i = 0
    try:
        while i < len(lines):
            lineno = i + 1
            raw = lines[i].rstrip("\r")
            i += 1
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            where = "%s:%d: %s" % (name, lineno, raw)

            def fail(msg):
                raise ScriptError("%s\n  %s" % (where, msg))

            def need():
                if cur is None:
                    fail("no connection (CONNECT first)")
                return conns[cur]

            def expect_line():
                try:
                    return need().line()
                except (EOFError, ScriptError) as e:
                    fail(str(e))

            if raw.startswith("C: "):
                need().send(expand(raw[3:]).encode() + b"\r\n")
            elif raw.startswith("C! "):
                need().send(_unescape(expand(raw[3:])))
            elif raw.startswith("S: "):
                want = expand(raw[3:])
                got = expect_line()
                if got != want:
                    fail("expected %r\n  got      %r" % (want, got))
                checked += 1
            elif raw.startswith("S! "):
                want = _unescape(expand(raw[3:]))
                try:
                    got = need().rawline()
                except (EOFError, ScriptError) as e:
                    fail(str(e))
                if got != want:
                    fail("expected %r\n  got      %r" % (want, got))
                checked += 1
            elif raw.startswith("S~ "):
                rx = raw[3:]
                got = expect_line()
                m = re.fullmatch(rx, got)
                if not m:
                    fail("no match for %r\n  got %r" % (rx, got))
                vars_.update({k: v for k, v in m.groupdict().items()
                              if v is not None})
                checked += 1
            elif raw.startswith("S* "):
                want = expand(raw[3:])
                skipped = []
                while True:
                    got = expect_line()
                    if got == want:
                        break
                    skipped.append(got)
                    if len(skipped) > 100000:
                        fail("%r never came" % want)
                checked += 1
            elif raw == "CLOSED":
                c = need()
                deadline = time.monotonic() + WAIT
                while not c.closed():
                    if time.monotonic() > deadline:
                        fail("connection still open")
                    c.buf = b""
                checked += 1
            elif raw.startswith("CONNECT"):
                parts = raw.split()
                cur = parts[1] if len(parts) > 1 else "1"
                if cur in conns:
                    conns[cur].close()
                conns[cur] = Conn(port)
                got = expect_line()
                if not got.startswith("* OK "):
                    fail("greeting %r" % got)
            elif raw.startswith("USE "):
                cur = raw.split()[1]
                if cur not in conns:
                    fail("no connection %s" % cur)
            elif raw == "LOGIN":
                tagn[0] += 1
                tag = "L%d" % tagn[0]
                need().send(('%s LOGIN "%s" "%s"\r\n' %
                             (tag, user, password)).encode())
                got = expect_line()
                if not got.startswith(tag + " OK "):
                    fail("login failed: %r" % got)
            elif raw.startswith("APPEND "):
                parts = raw[7:].split(" ", 1)
                body = []
                while i < len(lines) and lines[i].rstrip("\r") != ".":
                    body.append(lines[i].rstrip("\r"))
                    i += 1
                i += 1
                data = ("\r\n".join(body) + "\r\n").encode()
                tagn[0] += 1
                tag = "P%d" % tagn[0]
                flags = (" " + parts[1]) if len(parts) > 1 else ""
                need().send(("%s APPEND %s%s {%d+}\r\n" %
                             (tag, parts[0], flags, len(data))).encode() +
                            data + b"\r\n")
                while True:
                    got = expect_line()
                    if got.startswith(tag + " "):
                        break
                if not got.startswith(tag + " OK "):
                    fail("append failed: %r" % got)
            elif raw.startswith("DELIVER "):
                if deliver is None:
                    fail("DELIVER without a harness")
                deliver(expand(raw[8:]))
            elif raw.startswith("SLEEP "):
                time.sleep(float(raw.split()[1]))
            elif raw.startswith("C* "):
                _, n, rest = raw.split(" ", 2)
                need().send(_unescape(expand(rest)) * int(n))
            elif raw.startswith("REPEAT "):
                _, n, rest = raw.split(" ", 2)
                if not rest.startswith("C: "):
                    fail("REPEAT takes a C: line")
                data = expand(rest[3:]).encode() + b"\r\n"
                need().send(data * int(n))
            else:
                fail("unknown directive")
    finally:
        for c in conns.values():
            c.close()
    return checked
