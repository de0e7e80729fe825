/* kiln parser: the Dockerfile front end. Pure: text in, AST and plan out; no I/O. */
#ifndef KILN_PARSER_H
#define KILN_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"

/* ---- AST (after BuildKit's parser.Node) ----------------------------------------------------- */

struct df_heredoc {
	char *name;	/* delimiter word */
	char *content;	/* body, including the final newline */
	bool expand;	/* false when the delimiter was quoted */
	bool chomp;	/* <<- : leading tabs removed */
};

/**
 * One node. The root's children are the instructions; an instruction node has value = the
 * lower-case instruction name, flags = its --flags (verbatim), and next = the chain of argument
 * nodes. json is true for the exec (JSON array) form. original is the instruction's text as
 * written (continuations joined). start_line/end_line are 1-based lines of the source.
 */
struct df_node {
	char *value;
	struct df_node *next;
	struct df_node **children;
	size_t n_children;
	struct df_heredoc *heredocs;
	size_t n_heredocs;
	bool json;
	char *original;
	char **flags;
	size_t n_flags;
	int start_line;
	int end_line;
	char **prev_comment;
	size_t n_prev_comment;
};

#endif
