#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/strv.h"
#include "base/xalloc.h"

void kn_strv_push_owned(struct kn_strv *sv, char *s)
{
	KN_GROW(sv->v, sv->alloc, sv->n + 2);
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void kn_strv_push(struct kn_strv *sv, const char *s)
{
	kn_strv_push_owned(sv, xstrdup(s));
}

void kn_strv_pushf(struct kn_strv *sv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kn_strv_push_owned(sv, xvasprintf(fmt, ap));
	va_end(ap);
}

void kn_strv_release(struct kn_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->alloc = 0;
}

char **kn_strv_detach(struct kn_strv *sv)
{
	char **v = sv->v;

	if (!v)
		v = xcalloc(1, sizeof(char *));
	sv->v = NULL;
	sv->n = sv->alloc = 0;
	return v;
}

bool kn_strv_contains(const struct kn_strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (!strcmp(sv->v[i], s))
			return true;
	return false;
}

void kn_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

size_t kn_strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

char **kn_strv_dup(char *const *v)
{
	struct kn_strv sv = KN_STRV_INIT;

	for (size_t i = 0; v && v[i]; i++)
		kn_strv_push(&sv, v[i]);
	return kn_strv_detach(&sv);
}
