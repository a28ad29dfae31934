/*
 * linebuf: the bounded line splitter (see linebuf.h).  A line is looked
 * for only within its bound, so a client that never sends LF costs one
 * scan of max bytes per call, and an overlong line is dropped as it
 * comes in, however long it is.
 */
#include "config.h"

#include <string.h>

#include "linebuf.h"

void
linebuf_init(struct linebuf *lb)
{
	lb->skipping = false;
}

int
linebuf_parse(struct linebuf *lb, const char *data, size_t len, size_t max,
    size_t *consumed_r, const char **line_r, size_t *line_len_r)
{
	const char *lf;
	size_t skipped = 0, scan;

	*consumed_r = 0;
	/* An empty buffer may have no storage yet (data NULL). */
	if (len == 0)
		return 0;
	if (lb->skipping) {
		lf = memchr(data, '\n', len);
		if (lf == NULL) {
			*consumed_r = len;
			return 0;
		}
		skipped = (size_t)(lf - data) + 1;
		lb->skipping = false;
		data += skipped;
		len -= skipped;
	}
	scan = len < max ? len : max;
	lf = memchr(data, '\n', scan);
	if (lf != NULL) {
		size_t n = (size_t)(lf - data);

		*line_r = data;
		*line_len_r = n > 0 && data[n - 1] == '\r' ? n - 1 : n;
		*consumed_r = skipped + n + 1;
		return 1;
	}
	if (len < max) {
		*consumed_r = skipped;
		return 0;
	}
	/* Overlong: drop it through its LF when we have it, else skip on. */
	lf = memchr(data + max, '\n', len - max);
	if (lf != NULL)
		*consumed_r = skipped + (size_t)(lf - data) + 1;
	else {
		*consumed_r = skipped + len;
		lb->skipping = true;
	}
	return -1;
}

void
linebuf_split_command(char *line, size_t len, char *keyword, size_t size,
    bool *too_long_r, char **args_r)
{
	size_t i = 0, k = 0;
	char *end;

	*too_long_r = false;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	for (; i < len && line[i] != ' ' && line[i] != '\t'; i++) {
		char c = line[i];

		if (k + 1 >= size) {
			*too_long_r = true;
			continue;
		}
		keyword[k++] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
	}
	keyword[*too_long_r ? 0 : k] = '\0';
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	*args_r = line + i;
	end = line + len;
	while (end > *args_r && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
}
