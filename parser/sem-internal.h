/* kiln parser: helpers shared by shell.c, dockerignore.c, instructions.c and plan.c. */
#ifndef KILN_PARSER_SEM_INTERNAL_H
#define KILN_PARSER_SEM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* Private df_expand() flag: the caller only wants the expanded string, not the split words. */
#define DF_LEX_PRIVATE_NO_WORDS (1u << 31)

/* Decodes one UTF-8 rune at s[0..len); returns its width (1 for an invalid byte, *ret = byte). */
size_t sem_utf8_decode(const char *s, size_t len, uint32_t *ret);
/* Go's unicode.IsSpace, unicode.IsLetter (approximated for non-ASCII), unicode.IsDigit (ASCII). */
bool sem_is_space(uint32_t r);
bool sem_is_letter(uint32_t r);
/* Appends s quoted like Go's %q (double quotes, \" \\ \n \t and \xNN escapes). */
void sem_add_goquoted(struct kn_buf *b, const char *s);
/* Go's path.Clean on a '/'-separated path (Linux filepath.Clean). Owned result. */
char *sem_path_clean(const char *p);
/* ASCII case-insensitive equality. */
bool sem_strcaseeq(const char *a, const char *b);
char *sem_strdup_lower(const char *s);

struct df_instr;
struct df_env;
/* df_instr_expand() that fails (with sem_budget_error's text) once substitution has put in more
 * than budget bytes, and reports in *ret_produced (always, failure included) the bytes it put in,
 * for the plan's DF_PLAN_MAX_EXPANDED. */
int sem_instr_expand(const struct df_instr *in, const struct df_env *env, size_t budget,
		     struct df_instr **ret, size_t *ret_produced, kn_error **err);
/* The error past DF_PLAN_MAX_EXPANDED, located at in. Returns -1. */
int sem_budget_error(const struct df_instr *in, kn_error **err);

#endif
