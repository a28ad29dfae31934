/*
 * imap_date: the IMAP date forms.  "date" (SEARCH SINCE 1-Feb-1994,
 * RFC 3501 §9 date-text) and "date-time" (APPEND and INTERNALDATE,
 * "01-Feb-1994 13:14:15 +0100").  Month names are English whatever the
 * locale, and no libc time zone state is used, so results do not depend
 * on the process environment.
 */
#ifndef POSTERN_IMAP_DATE_H
#define POSTERN_IMAP_DATE_H

#include <time.h>

/* Bytes of a formatted date-time, NUL included. */
#define IMAP_DATETIME_SIZE	sizeof("01-Feb-1994 13:14:15 +0100")

/*
 * date-text: 1*2DIGIT "-" month "-" 4DIGIT, month case-insensitive.
 * *t_r is 00:00:00 UTC of that day (SEARCH compares days, "disregarding
 * time and timezone", RFC 3501 §6.4.4).  Returns 0 or -1.
 */
int	imap_date_parse(const char *s, time_t *t_r);

/*
 * date-time: day ("01", " 1" or "1") "-" month "-" year SP
 * hh:mm:ss SP ("+"/"-") hhmm.  *t_r is the instant (UTC), *tz_r the
 * zone offset in minutes (east positive).  Returns 0 or -1.
 */
int	imap_date_parse_datetime(const char *s, time_t *t_r, int *tz_r);

/*
 * Format t as a date-time in the zone tz_minutes east of UTC, e.g. for
 * INTERNALDATE; buf gets a NUL-terminated string.  Years outside
 * 0..9999 are clamped into that range.
 */
void	imap_date_format_datetime(time_t t, int tz_minutes,
	    char buf[IMAP_DATETIME_SIZE]);

#endif
