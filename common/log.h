/*
 * log: one event, one line.  Lines go to syslog (facility mail) as
 * "postern/SERVICE[pid]: text", or to stderr in the same shape with a
 * timestamp when running in the foreground (POSTERN_LOG_STDERR=1 in the
 * environment, which posternd passes to every service it starts).
 * Client-supplied text must go through log_escape() before it is logged.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* service: the role name ("smtpd", "qmgr", ...); to_stderr forces stderr. */
void	log_init(const char *service, bool to_stderr);
/* Re-evaluate POSTERN_LOG_STDERR / set debug level after config reload. */
void	log_set_debug(bool on);
const char *log_service(void);

void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs "fatal: ..." and exits with status 1. */
void	log_fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
/* Logs "panic: ..." and aborts: our own bug. */
void	log_panic(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copy at most maxlen bytes of client text into dst (size dstsize), replacing
 * control and non-printable bytes by '?' (UTF-8 sequences are kept) and
 * marking truncation with "...".  Returns dst.
 */
char	*log_escape(char *dst, size_t dstsize, const char *src, size_t srclen);

/*
 * Postfix's delay notation for "delay=" and "delays=": two significant
 * digits, at most two decimals, "0" below 10 ms ("0.05", "1.2", "12").
 */
void	log_fmt_delay(char *dst, size_t size, double seconds);

#endif
