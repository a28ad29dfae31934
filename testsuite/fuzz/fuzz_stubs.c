/*
 * fuzz_stubs: what the harnesses share.  build.sh compiles common/log.c
 * with syslog() and openlog() renamed to the functions here, so the
 * warnings a parser logs for bad input cost nothing and do not fill the
 * system log, while panic and fatal lines (the ones before an abort or
 * exit, which the fuzzer reports) still reach stderr.  Also a scratch
 * file helper for the parsers that read files.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fuzz_stubs.h"

void
fuzz_openlog(const char *ident, int option, int facility)
{
	(void)ident;
	(void)option;
	(void)facility;
}

void
fuzz_syslog(int prio, const char *fmt, ...)
{
	va_list ap;

	if ((prio & LOG_PRIMASK) > LOG_CRIT)
		return;
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputc('\n', stderr);
}

char *
fuzz_scratch_path(const char *name)
{
	char tmpl[] = "/tmp/postern-fuzz.XXXXXX";
	const char *dir;
	size_t len;
	char *path;

	if ((dir = mkdtemp(tmpl)) == NULL) {
		perror("mkdtemp");
		abort();
	}
	len = strlen(dir) + 1 + strlen(name) + 1;
	if ((path = malloc(len)) == NULL)
		abort();
	(void)snprintf(path, len, "%s/%s", dir, name);
	return path;
}

void
fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL) {
		perror(path);
		abort();
	}
	if (size > 0 && fwrite(data, 1, size, fp) != size)
		abort();
	if (fclose(fp) != 0)
		abort();
}

char *
fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}
