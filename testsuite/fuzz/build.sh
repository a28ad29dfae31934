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
CONFIG_H

cflags="-g -O1 -fno-omit-frame-pointer -std=gnu11 -Wall -Wextra \
-fsanitize=$san -fno-sanitize-recover=all ${FUZZ_CFLAGS:-}"
cppflags="-I$out -I$top/common -I$top/smtp -I$here \
-DSYSCONFDIR=\"/etc\" -DPKGLIBEXECDIR=\"/usr/libexec/postern\" \
-DLOCALSTATEDIR=\"/var\" -DSBINDIR=\"/usr/sbin\" -DBINDIR=\"/usr/bin\""
libs="-ldb"
status=0

# compile SRC OBJ [EXTRA FLAGS]: instrumented for coverage, no main().
compile() {
	src=$1 obj=$2
	shift 2
	# shellcheck disable=SC2086
	$CC $cflags -fsanitize=fuzzer-no-link $cppflags "$@" -c "$src" \
	    -o "$obj"
}

# The library part: common modules, and the log module with syslog()
# going to fuzz_stubs.c instead.
objs=""
for m in buf xmalloc str cfg cfg_params map netaddr addr; do
	compile "$top/common/$m.c" "$out/obj/$m.o" || exit 1
	objs="$objs $out/obj/$m.o"
done
compile "$top/common/log.c" "$out/obj/log.o" \
    -Dsyslog=fuzz_syslog -Dopenlog=fuzz_openlog || exit 1
compile "$here/fuzz_stubs.c" "$out/obj/fuzz_stubs.o" || exit 1
objs="$objs $out/obj/log.o $out/obj/fuzz_stubs.o"

# harness NAME [EXTRA SOURCES...]
harness() {
	name=$1
	shift
	extra=""
	for src in "$@"; do
		o="$out/obj/$(basename "$src" .c).o"
		compile "$src" "$o" || return 1
		extra="$extra $o"
	done
	# shellcheck disable=SC2086
	$CC $cflags -fsanitize=fuzzer $cppflags "$here/fuzz_$name.c" \
	    $extra $objs $libs -o "$out/fuzz_$name" || return 1
	echo "built $out/fuzz_$name"
}

for h in cfg map addr; do
	harness "$h" || { echo "fuzz_$h: build failed" >&2; status=1; }
done
# smtpd_parse.c belongs to the SMTP server and may be mid-change: last.
harness smtpd_parse "$top/smtp/smtpd_parse.c" ||
    { echo "fuzz_smtpd_parse: build failed" >&2; status=1; }
exit $status
