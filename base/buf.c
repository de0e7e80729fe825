#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/xalloc.h"

char kn_buf_empty[1];

void kn_buf_init(struct kn_buf *b)
{
	b->buf = kn_buf_empty;
	b->len = 0;
	b->alloc = 0;
}

void kn_buf_release(struct kn_buf *b)
{
	if (b->alloc)
		free(b->buf);
	kn_buf_init(b);
}

char *kn_buf_detach(struct kn_buf *b)
{
	char *s;

	if (!b->alloc)
		return xstrdup("");
	s = b->buf;
	kn_buf_init(b);
	return s;
}

void kn_buf_grow(struct kn_buf *b, size_t extra)
{
	size_t need;

	if (b->len + extra + 1 < b->len)
		abort();
	need = b->len + extra + 1;
	if (!b->alloc) {
		b->buf = NULL;
		b->alloc = 0;
	}
	if (need > b->alloc) {
		size_t n = b->alloc ? b->alloc : 64;

		while (n < need)
			n *= 2;
		b->buf = xreallocarray(b->buf, n, 1);
		b->alloc = n;
	}
	if (!b->len)
		b->buf[0] = 0;
}

void kn_buf_reset(struct kn_buf *b)
{
	kn_buf_setlen(b, 0);
}

void kn_buf_setlen(struct kn_buf *b, size_t len)
{
	if (!b->alloc)
		return;
	if (len > b->alloc - 1)
		abort();
	b->len = len;
	b->buf[len] = 0;
}

void kn_buf_add(struct kn_buf *b, const void *data, size_t len)
{
	if (!len)
		return;
	if (!b->alloc || len >= b->alloc - b->len)
		kn_buf_grow(b, len);
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	b->buf[b->len] = 0;
}

void kn_buf_adds(struct kn_buf *b, const char *s)
{
	kn_buf_add(b, s, strlen(s));
}

void kn_buf_addch(struct kn_buf *b, int c)
{
	if (!b->alloc || b->len + 1 >= b->alloc)
		kn_buf_grow(b, 1);
	b->buf[b->len++] = (char)c;
	b->buf[b->len] = 0;
}

void kn_buf_vaddf(struct kn_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	/* Format straight into the spare room; only a result that does not fit is formatted twice. */
	kn_buf_grow(b, 64);
	va_copy(cp, ap);
	n = vsnprintf(b->buf + b->len, b->alloc - b->len, fmt, cp);
	va_end(cp);
	if (n < 0)
		abort();
	if ((size_t)n >= b->alloc - b->len) {
		kn_buf_grow(b, (size_t)n);
		vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
	}
	b->len += (size_t)n;
}

void kn_buf_addf(struct kn_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kn_buf_vaddf(b, fmt, ap);
	va_end(ap);
}

void kn_buf_rtrim(struct kn_buf *b)
{
	while (b->len && isspace((unsigned char)b->buf[b->len - 1]))
		b->len--;
	if (b->alloc)
		b->buf[b->len] = 0;
}
