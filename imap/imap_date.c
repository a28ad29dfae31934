/*
 * imap_date: IMAP "date" and "date-time" (RFC 9051 §9) to and from
 * time_t, with the proleptic Gregorian calendar done here rather than by
 * timegm()/gmtime_r(), so nothing depends on TZ or locale.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "imap_date.h"
#include "imap_parse_private.h"

static const char *const date_months[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* Days from 1970-01-01 to y-m-d (m 1..12). */
static int64_t
date_days_from_civil(int64_t y, unsigned int m, unsigned int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
date_civil_from_days(int64_t z, int64_t *y_r, unsigned int *m_r,
    unsigned int *d_r)
{
	int64_t era, doe, yoe, doy, mp, y;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d_r = (unsigned int)(doy - (153 * mp + 2) / 5 + 1);
	*m_r = (unsigned int)(mp < 10 ? mp + 3 : mp - 9);
	*y_r = y + (*m_r <= 2);
}

static unsigned int
date_month_days(int64_t y, unsigned int m)
{
	static const unsigned char days[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};

	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return days[m - 1];
}

/* Exactly n digits at s; their value, or -1. */
static int
date_digits(const char *s, size_t n)
{
	uint64_t v;

	if (strnlen(s, n) < n || imap_parse_u64(s, n, 9999, &v) < 0)
		return -1;
	return (int)v;
}

/*
 * "d-Mon-yyyy" at *sp with a 1 or 2 digit day (a leading space counts
 * as a digit position in date-time).  Advances *sp.  Returns the day
 * count since the epoch through *days_r, or -1.
 */
static int
date_parse_day(const char **sp, int64_t *days_r)
{
	const char *s = *sp;
	unsigned int i, m = 0;
	int day, year;

	if (s[0] == ' ' && s[1] >= '0' && s[1] <= '9')
		s++;
	if (s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9') {
		day = (s[0] - '0') * 10 + (s[1] - '0');
		s += 2;
	} else if (s[0] >= '0' && s[0] <= '9') {
		day = s[0] - '0';
		s++;
	} else
		return -1;
	if (*s++ != '-')
		return -1;
	if (strnlen(s, 3) < 3)
		return -1;
	for (i = 0; i < 12; i++) {
		if (strncasecmp(s, date_months[i], 3) == 0) {
			m = i + 1;
			break;
		}
	}
	if (m == 0)
		return -1;
	s += 3;
	if (*s++ != '-')
		return -1;
	if ((year = date_digits(s, 4)) < 0)
		return -1;
	s += 4;
	if (day < 1 || (unsigned int)day > date_month_days(year, m))
		return -1;
	*days_r = date_days_from_civil(year, m, (unsigned int)day);
	*sp = s;
	return 0;
}

int
imap_date_parse(const char *s, time_t *t_r)
{
	int64_t days;

	if (date_parse_day(&s, &days) < 0 || *s != '\0')
		return -1;
	*t_r = (time_t)(days * 86400);
	return 0;
}

int
imap_date_parse_datetime(const char *s, time_t *t_r, int *tz_r)
{
	int64_t days;
	int hh, mm, ss, zh, zm, sign;

	if (date_parse_day(&s, &days) < 0 || *s++ != ' ')
		return -1;
	if ((hh = date_digits(s, 2)) < 0 || s[2] != ':' ||
	    (mm = date_digits(s + 3, 2)) < 0 || s[5] != ':' ||
	    (ss = date_digits(s + 6, 2)) < 0 || s[8] != ' ')
		return -1;
	/* A leap second (60) is accepted and counted as the next one. */
	if (hh > 23 || mm > 59 || ss > 60)
		return -1;
	s += 9;
	if (*s == '+')
		sign = 1;
	else if (*s == '-')
		sign = -1;
	else
		return -1;
	s++;
	if ((zh = date_digits(s, 2)) < 0 || (zm = date_digits(s + 2, 2)) < 0 ||
	    s[4] != '\0' || zm > 59)
		return -1;
	*tz_r = sign * (zh * 60 + zm);
	*t_r = (time_t)(days * 86400 + hh * 3600 + mm * 60 + ss -
	    (int64_t)*tz_r * 60);
	return 0;
}

void
imap_date_format_datetime(time_t t, int tz_minutes,
    char buf[IMAP_DATETIME_SIZE])
{
	int64_t local = (int64_t)t + (int64_t)tz_minutes * 60;
	int64_t days, secs, y;
	unsigned int m, d;
	int tz = tz_minutes < 0 ? -tz_minutes : tz_minutes;

	days = local / 86400;
	secs = local % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	date_civil_from_days(days, &y, &m, &d);
	if (y < 0) {
		y = 0;
		m = d = 1;
		secs = 0;
	} else if (y > 9999) {
		y = 9999;
		m = 12;
		d = 31;
		secs = 86399;
	}
	tz %= 100 * 60;
	(void)snprintf(buf, IMAP_DATETIME_SIZE,
	    "%02u-%s-%04d %02d:%02d:%02d %c%02d%02d", d, date_months[m - 1],
	    (int)y, (int)(secs / 3600), (int)(secs / 60 % 60),
	    (int)(secs % 60), tz_minutes < 0 ? '-' : '+', tz / 60, tz % 60);
}
