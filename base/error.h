/* kiln base: error values carried up to cli/, printed once there. */
#ifndef KILN_BASE_ERROR_H
#define KILN_BASE_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

/**
 * An error travelling up the stack. Library code never prints: it fills a kn_error and returns a
 * negative int (or NULL). Only cli/ prints, once, with kn_error_format().
 *
 * code: an errno value classifying the failure (0 when there is none: ENOENT for "not found",
 * EACCES for a refusal, EINVAL for bad input); msg: owned, lowercase, no final period;
 * os: the code came from the system (errno) and its strerror() text is part of the message;
 * file/line/col: optional source location (file NULL, line 0 when unset; col 0 when unknown).
 */
typedef struct kn_error {
	int code;
	bool os;
	char *msg;
	char *file;
	int line;
	int col;
} kn_error;

/*
 * Contract: every function taking `kn_error **err` (always last) sets *err exactly once on
 * failure and never on success. err may be NULL when the caller does not care.
 * All setters return -1 so that `return kn_error_set(err, ...)` reads naturally.
 */
int kn_error_set(kn_error **err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kn_error_setv(kn_error **err, int code, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
/* Like kn_error_set with a source location: formats as "file:line:col: msg" (col omitted when 0). */
int kn_error_set_at(kn_error **err, const char *file, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/*
 * Sets an error from errno: "msg: strerror(errno)" when printed. kn_error_set() messages carry
 * their code as a classification only: they must say what went wrong in their own words.
 */
int kn_error_errno(kn_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like kn_error_errno with the errno value given (saved earlier, or reported by a child). */
int kn_error_set_errno(kn_error **err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepends "context: " to an existing error's message (no-op when err or *err is NULL). Returns -1. */
int kn_error_wrap(kn_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Moves *src into *dst (dst may be NULL: src is freed). */
void kn_error_propagate(kn_error **dst, kn_error *src);
/* Returns the full message (location, text, strerror when os) in a newly allocated string. */
char *kn_error_format(const kn_error *e);
void kn_error_free(kn_error *e);

#endif
