/* kiln parser: internals shared by the AST files (ast.c, ast-lines.c, ast-json.c, ast-heredoc.c).
 */
#ifndef KILN_PARSER_AST_INTERNAL_H
#define KILN_PARSER_AST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parser/parser.h"

/*
 * Go semantics. BuildKit's parser is Go code, and its output depends on Go's notion of white
 * space (unicode.IsSpace), of printable runes (strconv.Quote) and on how invalid UTF-8 decodes
 * (one byte at a time, as U+FFFD). These helpers reproduce exactly that.
 */
enum df_uni_flags {
	DF_UNI_PRINT = 1 << 0,	/* Go unicode.IsPrint: L, M, N, P, S and U+0020 */
	DF_UNI_LETTER = 1 << 1, /* unicode.IsLetter */
	DF_UNI_DIGIT = 1 << 2,	/* unicode.IsDigit (Nd) */
};

struct df_uni_range {
	uint32_t lo;
	uint32_t hi;
	uint8_t flags;
};

extern const struct df_uni_range df_uni_ranges[];
extern const size_t df_uni_n_ranges;

#define DF_RUNE_ERROR 0xFFFDu

/* Decodes one rune of s[0..len) (len > 0) like Go's utf8.DecodeRune; returns its width (>= 1). */
size_t df_utf8_decode(const char *s, size_t len, uint32_t *ret_rune);
/* Appends the UTF-8 encoding of r (surrogates and out-of-range runes become U+FFFD). */
void df_utf8_add(struct kn_buf *b, uint32_t r);
/* Go's unicode.IsSpace. */
bool df_is_space(uint32_t r);
/* enum df_uni_flags membership of r. */
bool df_uni_is(uint32_t r, unsigned flag);
/* Appends strconv.Quote(s[0..len)) to b. */
void df_go_quote(struct kn_buf *b, const char *s, size_t len);
/* Length of the prefix of s[0..len) that is Go white space (bytes.TrimLeftFunc(IsSpace)). */
size_t df_span_space(const char *s, size_t len);
/* Length of s[0..len) with trailing Go white space removed. */
size_t df_rtrim_space(const char *s, size_t len);

/* ---- nodes --------------------------------------------------------------------------------- */

/* Per-parse state shared by the line parsers. */
struct df_pctx {
	char escape;	/* '\\' or '`' */
	size_t n_nodes; /* nodes made so far (DF_MAX_NODES) */
	int start_line; /* lines of the instruction being parsed, for nested nodes */
	int end_line;
	int start_col;
};

/*
 * A node with a copy of value[0..len). Fails (NULL, *err set) past DF_MAX_NODES.
 */
struct df_node *df_node_new(struct df_pctx *p, const char *value, size_t len, kn_error **err);
/* Frees a node, its next chain and its children (iteratively for next chains). NULL-safe. */
void df_node_free(struct df_node *n);
void df_heredoc_release(struct df_heredoc *h);

/* The instruction names BuildKit knows, lower case. */
extern const char *const df_instruction_names[];
extern const size_t df_n_instruction_names;

/* A piece of a string: s[off..off+len). */
struct df_span {
	size_t off;
	size_t len;
};

/*
 * BuildKit's splitCommand before the flags: the line trimmed of Go white space, the instruction
 * word up to the first [\t\v\f\r ] and the rest after that run of blanks.
 */
void df_split_command(const char *line, size_t len, struct df_span *ret_cmd,
		      struct df_span *ret_rest);

/*
 * Builds an instruction node from one logical line (continuations joined, no newline), as
 * BuildKit's newNodeFromLine: splits the instruction word, extracts --flags and runs the line
 * parser for the instruction. depth counts ONBUILD nesting.
 */
struct df_node *df_node_from_line(struct df_pctx *p, const char *line, size_t len, int depth,
				  kn_error **err);

/*
 * JSON array of strings (Go encoding/json into []interface{}). Returns 1 and the element chain
 * in *ret (NULL for []) when s is a valid array of strings; 0 when it is not JSON at all (the
 * caller falls back to the shell form); -1 with *err set when it is a valid JSON array with a
 * non-string element.
 */
int df_json_array(struct df_pctx *p, const char *s, size_t len, struct df_node **ret,
		  kn_error **err);

/*
 * The heredocs named on an instruction line (BuildKit's heredocsFromLine), bodies empty.
 * Returns 0 with *ret and *ret_n set (possibly none), -1 with *err on a malformed delimiter.
 */
int df_heredocs_from_line(const char *line, size_t len, struct df_heredoc **ret, size_t *ret_n,
			  kn_error **err);

#endif
