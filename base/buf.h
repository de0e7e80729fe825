/* kiln base: growable byte buffer with git strbuf's invariants. */
#ifndef KILN_BASE_BUF_H
#define KILN_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

/**
 * buf is never NULL and always NUL-terminated (buf[len] == 0), so it can be used as a C string.
 * KN_BUF_INIT points at a static empty string until the first write; kn_buf_release() returns it
 * there. kn_buf_detach() is the only way to take ownership of the bytes.
 */
struct kn_buf {
	char *buf;
	size_t len;
	size_t alloc;
};

extern char kn_buf_empty[];
#define KN_BUF_INIT { kn_buf_empty, 0, 0 }

void kn_buf_init(struct kn_buf *b);
void kn_buf_release(struct kn_buf *b);
/* Returns the owned, NUL-terminated contents (never NULL) and resets b to empty. */
char *kn_buf_detach(struct kn_buf *b);
void kn_buf_grow(struct kn_buf *b, size_t extra);
void kn_buf_reset(struct kn_buf *b);
void kn_buf_setlen(struct kn_buf *b, size_t len);
void kn_buf_add(struct kn_buf *b, const void *data, size_t len);
void kn_buf_adds(struct kn_buf *b, const char *s);
void kn_buf_addch(struct kn_buf *b, int c);
void kn_buf_addf(struct kn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kn_buf_vaddf(struct kn_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Removes trailing whitespace. */
void kn_buf_rtrim(struct kn_buf *b);

#endif
