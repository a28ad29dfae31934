/*
 * log: syslog or stderr lines in Postfix/Dovecot style (see log.h).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "str.h"

static char log_ident[64] = "postern";
static const char *log_svc = "postern";
static bool log_stderr;
static bool log_debug_on;

void
log_init(const char *service, bool to_stderr)
{
	const char *env = getenv("POSTERN_LOG_STDERR");

	log_svc = service;
	snprintf(log_ident, sizeof(log_ident), "postern/%s", service);
	log_stderr = to_stderr || (env != NULL && strcmp(env, "1") == 0);
	if (getenv("POSTERN_DEBUG") != NULL)
		log_debug_on = true;
	if (!log_stderr)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_debug(bool on)
{
	log_debug_on = on;
}

const char *
log_service(void)
{
	return log_svc;
}

static void
log_emit(int prio, const char *prefix, const char *fmt, va_list ap)
{
	char msg[4096];
	int saved = errno;

	errno = saved;	/* keep %m working */
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_stderr) {
		char ts[32];
		time_t now = time(NULL);
		struct tm tm;

		localtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%b %e %H:%M:%S", &tm);
		fprintf(stderr, "%s %s[%ld]: %s%s\n", ts, log_ident,
		    (long)getpid(), prefix, msg);
		fflush(stderr);
	} else
		syslog(prio, "%s%s", prefix, msg);
	errno = saved;
}

#define LOG_FN(name, prio, prefix)				\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
	va_start(ap, fmt);					\
	log_emit(prio, prefix, fmt, ap);			\
	va_end(ap);						\
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	log_emit(LOG_DEBUG, "debug: ", fmt, ap);
	va_end(ap);
}

LOG_FN(log_info, LOG_INFO, "")
LOG_FN(log_warning, LOG_WARNING, "warning: ")
LOG_FN(log_error, LOG_ERR, "error: ")

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, "fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, "panic: ", fmt, ap);
	va_end(ap);
	abort();
}

char *
log_escape(char *dst, size_t dstsize, const char *src, size_t srclen)
{
	size_t i, o = 0;

	if (dstsize == 0)
		return dst;
	for (i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];

		if (o + 4 >= dstsize) {
			if (dstsize > 4) {
				o = dstsize - 4;
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[o] = '\0';
	return dst;
}

void
log_fmt_delay(char *dst, size_t size, double x)
{
	size_t len;

	if (x < 0.005) {
		str_lcpy(dst, "0", size);
		return;
	}
	if (x >= 10)
		snprintf(dst, size, "%.0f", x);
	else if (x >= 1)
		snprintf(dst, size, "%.1f", x);
	else
		snprintf(dst, size, "%.2f", x);
	/* Drop trailing zeros: "0.10" -> "0.1", "2.0" -> "2". */
	if (strchr(dst, '.') != NULL) {
		len = strlen(dst);
		while (len > 0 && dst[len - 1] == '0')
			dst[--len] = '\0';
		if (len > 0 && dst[len - 1] == '.')
			dst[--len] = '\0';
	}
}
