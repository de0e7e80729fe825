/* kiln base: NULL-terminated, growable string vectors. */
#ifndef KILN_BASE_STRV_H
#define KILN_BASE_STRV_H

#include <stdbool.h>
#include <stddef.h>

/** v is NULL-terminated once anything was pushed; v may be NULL while n == 0. Owns its strings. */
struct kn_strv {
	char **v;
	size_t n;
	size_t alloc;
};
#define KN_STRV_INIT { NULL, 0, 0 }

/* Appends a copy of s. */
void kn_strv_push(struct kn_strv *sv, const char *s);
/* Appends s, taking ownership. */
void kn_strv_push_owned(struct kn_strv *sv, char *s);
void kn_strv_pushf(struct kn_strv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kn_strv_release(struct kn_strv *sv);
/* Returns the owned NULL-terminated array (never NULL) and resets sv. */
char **kn_strv_detach(struct kn_strv *sv);
bool kn_strv_contains(const struct kn_strv *sv, const char *s);
/* Frees a NULL-terminated array of owned strings (NULL-safe). */
void kn_strv_free(char **v);
size_t kn_strv_len(char *const *v);
char **kn_strv_dup(char *const *v);

#endif
