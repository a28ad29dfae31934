#!/bin/sh
#
# Build the libFuzzer harnesses of this directory with clang, straight
# from the sources: no configure, no make.  See README.md.
#
#   testsuite/fuzz/build.sh [OUTDIR]      (default /tmp/postern-fuzz)
#
# Environment: CC (default clang), FUZZ_SANITIZE (default
# address,undefined), FUZZ_CFLAGS (added to the compiler flags).
# A harness that does not compile is reported and skipped; the exit
# status is then 1.

set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-${FUZZ_OUT:-/tmp/postern-fuzz}}
CC=${CC:-clang}
san=${FUZZ_SANITIZE:-address,undefined}

mkdir -p "$out/obj" || exit 1

# What configure would put in config.h, as far as these sources use it.
cat > "$out/config.h" <<'CONFIG_H'
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#define PACKAGE "postern"
#define PACKAGE_VERSION "fuzz"
/* Makefile.am passes these with -D. */
#define SYSCONFDIR "/etc"
#define PKGLIBEXECDIR "/usr/libexec/postern"
#define LOCALSTATEDIR "/var"
#define SBINDIR "/usr/sbin"
#define BINDIR "/usr/bin"
CONFIG_H

cflags="-g -O1 -fno-omit-frame-pointer -std=gnu11 -Wall -Wextra \
-fsanitize=$san -fno-sanitize-recover=all ${FUZZ_CFLAGS:-}"
# (Paths with spaces are not supported.)
cppflags="-I$out -I$top/common -I$top/smtp -I$top/pop3 -I$here"
libs="-ldb"
status=0

# compile SRC OBJ [EXTRA FLAGS]: instrumented for coverage, no main().
compile() {
	c_src=$1 c_obj=$2
	shift 2
	# shellcheck disable=SC2086
	$CC $cflags -fsanitize=fuzzer-no-link $cppflags "$@" -c "$c_src" \
	    -o "$c_obj"
}

# The library part: common modules, and the log module with syslog()
# going to fuzz_stubs.c instead.
objs=""
for m in buf xmalloc str linebuf cfg cfg_params map netaddr addr; do
	compile "$top/common/$m.c" "$out/obj/$m.o" || exit 1
	objs="$objs $out/obj/$m.o"
done
compile "$top/common/log.c" "$out/obj/log.o" \
    -Dsyslog=fuzz_syslog -Dopenlog=fuzz_openlog || exit 1
compile "$here/fuzz_stubs.c" "$out/obj/fuzz_stubs.o" || exit 1
objs="$objs $out/obj/log.o $out/obj/fuzz_stubs.o"

# harness NAME [EXTRA SOURCES...]
harness() {
	h_name=$1
	shift
	h_extra=""
	for h_src in "$@"; do
		h_obj="$out/obj/$(basename "$h_src" .c).o"
		compile "$h_src" "$h_obj" || return 1
		h_extra="$h_extra $h_obj"
	done
	# shellcheck disable=SC2086
	$CC $cflags -fsanitize=fuzzer $cppflags "$here/fuzz_$h_name.c" \
	    $h_extra $objs $libs -o "$out/fuzz_$h_name" || return 1
	echo "built $out/fuzz_$h_name"
}

# A dictionary of parameter names for fuzz_cfg, from the table itself.
{
	echo "# postern.conf names (libFuzzer -dict), from cfg_params.c"
	sed -n 's/^[[:space:]]*[A-Z_]*([[:space:]]*\("[a-z0-9_]*"\).*/\1/p' \
	    "$top/common/cfg_params.c" | sort -u
	# shellcheck disable=SC2016
	for t in ' = ' '$' '${' '$(' '?' ':' '{' '}' '\x0a ' '#' ', ' \
	    'hash:' 'texthash:' 'inline:{' 'regexp:' 'pcre:' 'proxy:' \
	    'passwd-file:' 'maildir:~/' 'mbox:' ':INBOX=' '%u' '[::1]:25'; do
		printf '"%s"\n' "$t"
	done
} > "$out/cfg.dict"
for d in map addr smtpd_parse rewrite_header; do
	cp "$here/$d.dict" "$out/$d.dict" || status=1
done

for h in cfg map addr; do
	harness "$h" || { echo "fuzz_$h: build failed" >&2; status=1; }
done
# MIME parser and decoders (only this harness uses them).
cp "$here/mime.dict" "$out/mime.dict" || status=1
harness mime "$top/common/mime.c" "$top/common/mime_header.c" \
    "$top/common/mime_decode.c" ||
    { echo "fuzz_mime: build failed" >&2; status=1; }
harness pop3_parse "$top/pop3/pop3_parse.c" ||
    { echo "fuzz_pop3_parse: build failed" >&2; status=1; }
# The IMAP parser: its sources and include directory are imap/.
cppflags="$cppflags -I$top/imap"
cp "$here/imap_parse.dict" "$out/imap_parse.dict" || status=1
harness imap_parse "$top/imap/imap_parse.c" "$top/imap/imap_parse_cmd.c" \
    "$top/imap/imap_parse_fetch.c" "$top/imap/imap_parse_search.c" \
    "$top/imap/imap_parse_dump.c" "$top/imap/imap_seqset.c" \
    "$top/imap/imap_utf7.c" "$top/imap/imap_date.c" ||
    { echo "fuzz_imap_parse: build failed" >&2; status=1; }
harness utf7 "$top/imap/imap_utf7.c" ||
    { echo "fuzz_utf7: build failed" >&2; status=1; }
harness imap_thread "$top/imap/imap_thread.c" "$top/common/unicase.c" ||
    { echo "fuzz_imap_thread: build failed" >&2; status=1; }
# The store's file readers (UID maps, mbox, message filter; the cache
# and the modseq index), with the MIME code the cache computes with.
cppflags="$cppflags -I$top/store"
store_srcs="$top/common/fdio.c $top/store/store.c $top/store/store_hash.c \
    $top/store/store_lock.c $top/store/store_msg.c $top/store/store_uidmap.c \
    $top/store/store_maildir.c $top/store/store_mbox.c \
    $top/store/store_file.c $top/store/store_index.c \
    $top/store/store_cache.c $top/store/store_cache_fill.c \
    $top/store/store_snap.c $top/store/store_quota.c \
    $top/common/mime.c $top/common/mime_header.c $top/common/mime_decode.c"
# shellcheck disable=SC2086
harness store_uidlist $store_srcs ||
    { echo "fuzz_store_uidlist: build failed" >&2; status=1; }
# shellcheck disable=SC2086
harness store_cache $store_srcs ||
    { echo "fuzz_store_cache: build failed" >&2; status=1; }
# The view snapshot reader and the Maildir++ quota file.
# shellcheck disable=SC2086
harness store_snap $store_srcs ||
    { echo "fuzz_store_snap: build failed" >&2; status=1; }
# shellcheck disable=SC2086
harness store_quota $store_srcs ||
    { echo "fuzz_store_quota: build failed" >&2; status=1; }
# What posternd reads from login processes and the auth service.
cppflags="$cppflags -I$top/master -I$top/login"
harness master_handoff "$top/master/master_handoff_parse.c" \
    "$top/common/base64.c" ||
    { echo "fuzz_master_handoff: build failed" >&2; status=1; }
# The queue file reader (qmgr, local, bounce, postern queue).
harness queue_file "$top/smtp/queue_file.c" "$top/common/fdio.c" ||
    { echo "fuzz_queue_file: build failed" >&2; status=1; }
# The SASL mechanisms of the auth service, with the password schemes.
cppflags="$cppflags -I$top/auth"
libs_save=$libs
libs="$libs -lcrypto -lcrypt"
harness sasl "$top/auth/sasl.c" "$top/common/password.c" \
    "$top/common/base64.c" ||
    { echo "fuzz_sasl: build failed" >&2; status=1; }
libs=$libs_save
# The header address rewriter (smtp/rewrite.c), with the user database
# it reads for passwd-file: virtual mailboxes.
harness rewrite_header "$top/smtp/rewrite.c" "$top/common/userdb.c" \
    "$top/common/fdio.c" ||
    { echo "fuzz_rewrite_header: build failed" >&2; status=1; }
# The outbound SMTP client's reply parser and message encoder.
harness smtp_reply "$top/smtp/smtp_parse.c" ||
    { echo "fuzz_smtp_reply: build failed" >&2; status=1; }
# The 8BITMIME downgrade, with the quoted-printable encoder it plans for.
harness smtp_mime "$top/smtp/smtp_mime.c" "$top/smtp/smtp_parse.c" \
    "$top/common/mime.c" "$top/common/mime_header.c" \
    "$top/common/mime_decode.c" ||
    { echo "fuzz_smtp_mime: build failed" >&2; status=1; }
# qmgr's parser of the smtp agent's replies.
harness qmgr_reply "$top/smtp/qmgr_proto.c" ||
    { echo "fuzz_qmgr_reply: build failed" >&2; status=1; }
# smtpd_parse.c belongs to the SMTP server and may be mid-change: last.
harness smtpd_parse "$top/smtp/smtpd_parse.c" ||
    { echo "fuzz_smtpd_parse: build failed" >&2; status=1; }
exit $status
