#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/buf.h"
#include "base/xalloc.h"

int kn_error_setv(kn_error **err, int code, const char *fmt, va_list ap)
{
	kn_error *e;

	if (!err)
		return -1;
	e = xcalloc(1, sizeof(*e));
	e->code = code;
	e->msg = xvasprintf(fmt, ap);
	kn_error_free(*err);
	*err = e;
	return -1;
}

int kn_error_set(kn_error **err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kn_error_setv(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

int kn_error_set_at(kn_error **err, const char *file, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kn_error_setv(err, 0, fmt, ap);
	va_end(ap);
	if (err && *err) {
		(*err)->file = file ? xstrdup(file) : NULL;
		(*err)->line = line;
		(*err)->col = col;
	}
	return -1;
}

int kn_error_errno(kn_error **err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	kn_error_setv(err, saved, fmt, ap);
	va_end(ap);
	if (err && *err)
		(*err)->os = saved > 0;
	errno = saved;
	return -1;
}

int kn_error_set_errno(kn_error **err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kn_error_setv(err, code, fmt, ap);
	va_end(ap);
	if (err && *err)
		(*err)->os = code > 0;
	return -1;
}

int kn_error_wrap(kn_error **err, const char *fmt, ...)
{
	va_list ap;
	char *ctx, *msg;

	if (!err || !*err)
		return -1;
	va_start(ap, fmt);
	ctx = xvasprintf(fmt, ap);
	va_end(ap);
	msg = xasprintf("%s: %s", ctx, (*err)->msg);
	free(ctx);
	free((*err)->msg);
	(*err)->msg = msg;
	return -1;
}

void kn_error_propagate(kn_error **dst, kn_error *src)
{
	if (!dst) {
		kn_error_free(src);
		return;
	}
	kn_error_free(*dst);
	*dst = src;
}

char *kn_error_format(const kn_error *e)
{
	struct kn_buf b = KN_BUF_INIT;

	if (!e)
		return xstrdup("unknown error");
	if (e->file) {
		kn_buf_addf(&b, "%s:", e->file);
		if (e->line > 0)
			kn_buf_addf(&b, "%d:", e->line);
		if (e->line > 0 && e->col > 0)
			kn_buf_addf(&b, "%d:", e->col);
		kn_buf_addch(&b, ' ');
	}
	kn_buf_adds(&b, e->msg ? e->msg : "unknown error");
	if (e->os && e->code > 0)
		kn_buf_addf(&b, ": %s", strerror(e->code));
	return kn_buf_detach(&b);
}

void kn_error_free(kn_error *e)
{
	if (!e)
		return;
	free(e->msg);
	free(e->file);
	free(e);
}
