#!/bin/sh
#
# Build every libFuzzer harness (build.sh) and run each one for
# $FUZZ_TIME seconds (default 60) with ASan+UBSan, starting from its
# checked-in seed corpus (corpus/NAME, copied: the run's new inputs stay
# in OUTDIR) and its dictionary (NAME.dict) when there is one.
#
#   testsuite/fuzz/run.sh [OUTDIR] [HARNESS...]   (default /tmp/postern-fuzz)
#
# Prints one line per harness: executions, corpus size, result; a
# finding leaves its crash file and log in OUTDIR and makes the exit
# status 1.  Ends with "N passed, M failed".

set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/postern-fuzz}
[ $# -gt 0 ] && shift
time=${FUZZ_TIME:-60}

sh "$here/build.sh" "$out" > "$out.build.log" 2>&1 || {
	echo "some harnesses did not build (see $out.build.log)" >&2
}
if [ $# -gt 0 ]; then
	names=$*
else
	names=$(cd "$out" && ls fuzz_* 2>/dev/null | sed 's/^fuzz_//')
fi
passed=0
failed=0
for n in $names; do
	bin=$out/fuzz_$n
	if [ ! -x "$bin" ]; then
		echo "fuzz_$n: not built"
		failed=$((failed + 1))
		continue
	fi
	corp=$out/corpus-$n
	mkdir -p "$corp"
	[ -d "$here/corpus/$n" ] && cp -n "$here/corpus/$n"/* "$corp"/ 2>/dev/null
	dict=""
	[ -f "$out/$n.dict" ] && dict="-dict=$out/$n.dict"
	log=$out/fuzz_$n.log
	# shellcheck disable=SC2086
	(cd "$out" && "$bin" -max_total_time="$time" -print_final_stats=1 \
	    -artifact_prefix="$out/crash-$n-" $dict "$corp" > "$log" 2>&1)
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	files=$(ls "$corp" | wc -l)
	if [ $rc -eq 0 ]; then
		echo "fuzz_$n: ${execs:-?} runs in ${time}s, corpus $files, no finding"
		passed=$((passed + 1))
	else
		echo "fuzz_$n: FINDING after ${execs:-?} runs, see $log"
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
