/*
 * buf: the one growable byte buffer used everywhere.  Data is pointer +
 * length and may hold NUL bytes; buf_cstr() gives a NUL-terminated view.
 * A buffer has an optional maximum size: an append that would pass it fails
 * with -1 and leaves the buffer unchanged, so protocol parsers can bound
 * client input without special cases.  Allocation failure aborts.
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stddef.h>
#include <stdarg.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;	/* 0 = unbounded */
};

/* Initialise an empty buffer; max 0 means no limit. */
void	buf_init(struct buf *b, size_t max);
/* Free the storage; the buffer can be reused after buf_init(). */
void	buf_free(struct buf *b);
void	buf_reset(struct buf *b);
/* Make room for n more bytes; -1 if that would pass max. */
int	buf_reserve(struct buf *b, size_t n);
int	buf_append(struct buf *b, const void *data, size_t n);
int	buf_append_str(struct buf *b, const char *s);
int	buf_append_char(struct buf *b, char c);
int	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Remove the first n bytes. */
void	buf_consume(struct buf *b, size_t n);
/* NUL-terminated view; valid until the next change of the buffer. */
const char *buf_cstr(struct buf *b);
/* Detach the data as a malloc'ed NUL-terminated string; buffer is reset. */
char	*buf_steal(struct buf *b);

#endif
