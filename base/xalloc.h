/* kiln base: allocation that aborts on out-of-memory (OOM never becomes a kn_error). */
#ifndef KILN_BASE_XALLOC_H
#define KILN_BASE_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
/* Reallocates to nmemb*size bytes, aborting on overflow. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* Grows *p (with *alloc elements of size) so that at least `need` elements fit. */
void kn_grow(void **p, size_t *alloc, size_t need, size_t size);
#define KN_GROW(p, alloc, need) kn_grow((void **)&(p), &(alloc), (need), sizeof(*(p)))

#endif
