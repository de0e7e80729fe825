/* kiln parser: the Dockerfile front end. Pure: text in, AST and plan out; no I/O. */
#ifndef KILN_PARSER_H
#define KILN_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"

/* ---- AST (after BuildKit's parser.Node; parser/ast.c) ------------------------------------- */

/*
 * Limits on hostile input. df_parse() fails with a message naming the limit past
 * them; they are far above anything a real Dockerfile needs.
 */
#define DF_MAX_INPUT (10u * 1024 * 1024) /* bytes of Dockerfile text */
#define DF_MAX_NODES (1u << 20)		 /* argument nodes in the whole AST */
#define DF_MAX_ONBUILD_DEPTH 16		 /* ONBUILD ONBUILD ... nesting */
/* Kept, not errors: comment lines above one instruction and warnings past these are dropped. */
#define DF_MAX_PREV_COMMENTS 4096
#define DF_MAX_WARNINGS 1000

/**
 * A heredoc attached to a RUN, COPY or ADD instruction (or to an ONBUILD wrapping one), in the
 * order the delimiters appear on the instruction line.
 *
 * name: the delimiter word with quotes removed (`<<"EOF"` gives "EOF").
 * content: the body exactly as BuildKit's parser keeps it: every line up to (not including) the
 *   terminator line, each with its line ending as written ("\n" or "\r\n"); "" for an empty
 *   body. Leading tabs are NOT removed here even when chomp is true: use df_heredoc_chomp().
 * expand: false when any part of the delimiter was quoted (`<<'EOF'`, `<<"EOF"`, `<<E"O"F`):
 *   the body must then not be variable-expanded.
 * chomp: the `<<-` form: leading tabs are to be removed from every body line (and were ignored
 *   when looking for the terminator).
 * fd: the file-descriptor prefix (`3<<EOF` gives 3), 0 when none was written.
 */
struct df_heredoc {
	char *name;	/* delimiter word */
	char *content;	/* body, including the final newline */
	bool expand;	/* false when the delimiter was quoted */
	bool chomp;	/* <<- : leading tabs to be removed (see df_heredoc_chomp) */
	unsigned fd;	/* N in N<<EOF, 0 when absent */
};

/**
 * One node. The root's children are the instructions; an instruction node has value = the
 * lower-case instruction name, flags = its leading --flags (quotes and '\' escapes removed, as
 * BuildKit does: `--chown="a b"` gives "--chown=a b"), and next = the chain of argument
 * nodes. json is true for the exec (JSON array) form. original is the instruction's text as
 * written (continuations joined). start_line/end_line are 1-based lines of the source.
 *
 * Shapes of the next chain, per instruction (exactly BuildKit's):
 * - FROM, EXPOSE: one node per whitespace-separated word ("AS" and the stage name included).
 * - RUN, CMD, ENTRYPOINT, SHELL: JSON form: one node per array element (json = true; an empty
 *   array gives next == NULL); otherwise a single node holding the whole rest of the line.
 * - ADD, COPY, VOLUME: JSON form as above, else one node per whitespace-separated word.
 * - ENV, LABEL: triples key, value, separator: separator "=" for `k=v` (value keeps its quotes
 *   and escapes as written, e.g. "\"a b\""), "" for the legacy `ENV k v` form (value = the
 *   rest of the line).
 * - ARG: one node per word, as written (`a=1`, `b`).
 * - MAINTAINER, USER, WORKDIR, STOPSIGNAL: a single node with the rest of the line.
 * - HEALTHCHECK: first node = the type word as written ("NONE", "CMD", ...), then the CMD part
 *   as for CMD (json set on the instruction node when it is a JSON array); no next for a bare
 *   HEALTHCHECK.
 * - ONBUILD: next is one node with value "" and exactly one child: the wrapped instruction
 *   (a full instruction node, with its own value, flags, next, json, original = the text after
 *   ONBUILD, and the same start/end lines as the ONBUILD). Heredocs of an ONBUILD RUN/COPY/ADD
 *   are attached to the ONBUILD node itself, as BuildKit does.
 * An instruction with no arguments has next == NULL.
 *
 * value is NUL-terminated; value_len is its length, which only differs from strlen(value) when
 * a JSON element contained "\u0000". The input itself may not contain NUL bytes.
 * prev_comment: the comment lines (without '#' and surrounding blanks) directly above the
 * instruction, parser directives excluded (the first DF_MAX_PREV_COMMENTS of them).
 * start_col: 1-based byte column of the instruction word on start_line (after leading blanks).
 *
 * The whole tree is owned by its struct df_ast and read-only for consumers.
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
	size_t value_len;
	int start_col;
};

/** A non-fatal finding (e.g. an empty continuation line), for cli/ to print as a warning. */
struct df_warning {
	int line;	/* 1-based */
	char *msg;	/* BuildKit's short text, e.g. "Empty continuation line found in: ..." */
	char *url;	/* documentation link, may be NULL */
};

/** A parser directive found at the top of the file (`# name=value`). */
struct df_directive {
	char *name;	/* lower-case: "syntax", "escape" or "check" */
	char *value;	/* trimmed value as written */
	int line;	/* 1-based */
};

/**
 * The parsed `# check=` directive (BuildKit's linter options), found the way BuildKit's linter
 * finds it: a first "#!" line is skipped and the value ends at its first space. All false and
 * empty when there is none.
 */
struct df_check {
	bool skip_all;		/* skip=all */
	char **skip;		/* NULL-terminated rule names from skip=a,b (never NULL) */
	bool error;		/* error=true: warnings fail the build */
	bool experimental_all;	/* experimental=all */
	char **experimental;	/* NULL-terminated rule names (never NULL) */
};

/**
 * A parsed Dockerfile. root->value is "", root->children are the instructions in order.
 * file is the name given to df_parse() (used in error locations); escape is '\\' or '`'.
 */
struct df_ast {
	struct df_node *root;
	char *file;
	char escape;
	struct df_directive *directives;
	size_t n_directives;
	struct df_check check;
	struct df_warning *warnings;
	size_t n_warnings;
};

/**
 * Parses Dockerfile text (len bytes, need not be NUL-terminated) the way BuildKit's
 * frontend/dockerfile/parser does: directives, comments, continuations, heredocs and the
 * per-instruction line parsers. file names the source in errors ("Dockerfile" when NULL).
 *
 * Returns a new AST (free with df_ast_free()) or NULL with *err set, located as
 * "file:line:col: msg" (kn_error file/line/col). Errors: "file with no instructions",
 * unknown instruction 'X' with a did-you-mean suggestion, ENV/LABEL syntax, JSON arrays of
 * non-strings, "unterminated heredoc", bad or repeated directives, NUL bytes, and the DF_MAX_*
 * limits. Linear in the input size.
 */
struct df_ast *df_parse(const char *text, size_t len, const char *file, kn_error **err);

/** Options of df_parse_ex(). */
enum df_parse_flags {
	/*
	 * Keep instructions with an unknown name instead of failing, as BuildKit's parser itself
	 * does (its instructions layer rejects them later): value is the lower-cased name and next
	 * one empty node, e.g. `(frob "")`.
	 */
	DF_PARSE_ALLOW_UNKNOWN = 1 << 0,
};

/** df_parse() with enum df_parse_flags. */
struct df_ast *df_parse_ex(const char *text, size_t len, const char *file, unsigned flags,
			   kn_error **err);

/** Frees the AST and everything in it. NULL-safe. */
void df_ast_free(struct df_ast *ast);
DEFINE_FREEP(struct df_ast, df_ast_free)

/**
 * BuildKit's AST.Dump() followed by "\n": one S-expression per instruction, e.g.
 * `(copy ["--from=a"] "x" "/y")`, exactly as in BuildKit's testfiles/<case>/result.
 * Returns an owned string.
 */
char *df_ast_dump(const struct df_ast *ast);
/** Dump of one node (BuildKit's Node.Dump(), no trailing newline). Returns an owned string. */
char *df_node_dump(const struct df_node *node);

/** The value of directive `name` ("syntax", "escape", "check"), or NULL when absent. */
const char *df_ast_directive(const struct df_ast *ast, const char *name);

/**
 * Returns the heredoc body with leading tabs removed from every line when h->chomp is set,
 * else a copy of the body. Owned string.
 */
char *df_heredoc_chomp(const struct df_heredoc *h);

/** True when lower-case `name` is a Dockerfile instruction known to BuildKit. */
bool df_is_instruction(const char *name);

/* ---- expansion ---------------------------------------------------------------------------- */

/**
 * An ordered environment (ENV, ARG values, build args): keys are unique and case-sensitive
 * (Linux); df_env_set() on an existing key replaces its value in place, so "later wins" and the
 * first position is kept (docker's config Env order). Owns copies of every key and value.
 * Lookups are hashed: O(1) on average.
 */
struct df_env {
	char **keys;
	char **values;
	size_t n;
	size_t alloc;
	size_t *slots;	  /* private: open-addressing index into keys, 0 = empty, else i + 1 */
	size_t n_slots;	  /* private */
};
#define DF_ENV_INIT { NULL, NULL, 0, 0, NULL, 0 }

void df_env_init(struct df_env *env);
/* Frees the contents (NULL-safe on a zeroed or DF_ENV_INIT env); leaves env empty and reusable. */
void df_env_release(struct df_env *env);
/* Sets key to a copy of value (value NULL means ""). */
void df_env_set(struct df_env *env, const char *key, const char *value);
/* Sets from "KEY=VALUE"; a string without '=' sets KEY to "" (BuildKit's BuildEnvs). */
void df_env_set_kv(struct df_env *env, const char *kv);
/* The value (borrowed, valid until the next change to env) or NULL when key is not set. */
const char *df_env_get(const struct df_env *env, const char *key);
bool df_env_unset(struct df_env *env, const char *key);
/* Appends (with df_env_set semantics) every entry of src to dst. */
void df_env_merge(struct df_env *dst, const struct df_env *src);
/* A newly allocated NULL-terminated "KEY=VALUE" list in order; free with kn_strv_free(). */
char **df_env_to_strv(const struct df_env *env);

/** Lexer options, after BuildKit's shell.Lex fields. */
enum df_lex_flags {
	DF_LEX_RAW_QUOTES = 1 << 0,	/* keep the quote characters in the result */
	DF_LEX_RAW_ESCAPES = 1 << 1,	/* keep the escape characters in the result */
	DF_LEX_SKIP_QUOTES = 1 << 2,	/* quotes are ordinary characters */
	DF_LEX_SKIP_UNSET = 1 << 3,	/* leave references to unset variables as written */
};

/**
 * The result of expanding one word. result is the expanded string (ProcessWord); words is the
 * NULL-terminated list of words after splitting on unquoted white space produced outside quotes
 * (ProcessWords). matched/unmatched are the variable names looked up that were set / not set,
 * each name once, in first-use order: the builder uses matched to know which build ARGs a step
 * used (cache keys). All owned; release with df_expansion_release().
 */
struct df_expansion {
	char *result;
	char **words;
	struct kn_strv matched;
	struct kn_strv unmatched;
	size_t produced;	/* bytes substitution put in (values, trims, replacements) */
};

/** Nesting limit of ${...} inside ${...}: deeper input is an error, never a stack overflow. */
#define DF_EXPAND_MAX_DEPTH 128
/**
 * Bytes one word's expansion may put in by substitution (variable values, trimmed values,
 * ${a/p/r} replacements; the word's own text is free): 1 MiB, eight times what Linux passes
 * to a program as one argument or environment string (MAX_ARG_STRLEN). Past it df_expand()
 * fails ("expansion longer than ...") before allocating more: a chain of ARGs that each repeat
 * the previous one ten times stops here instead of growing to gigabytes.
 */
#define DF_EXPAND_MAX_LEN (1u << 20)

/**
 * Expands word with env, exactly as BuildKit's shell lexer: $a ${a} ${a:-w} ${a-w} ${a:+w}
 * ${a+w} ${a:?msg} ${a?msg} ${a#p} ${a##p} ${a%p} ${a%%p} ${a/p/r} ${a//p/r}, single and double
 * quotes, and escapes with `escape` ('\\' or '`'). flags: enum df_lex_flags. env may be NULL.
 * On failure sets *err to BuildKit's text, e.g. `failed to process "${a": syntax error: missing
 * '}'`, and leaves *ret zeroed but for produced (the work done, for budgets). On success fills
 * *ret (caller releases it).
 */
int df_expand(const char *word, const struct df_env *env, int escape, unsigned flags,
	      struct df_expansion *ret, kn_error **err);
void df_expansion_release(struct df_expansion *x);
/* Convenience: the expanded string (owned) or NULL with *err set. */
char *df_expand_word(const char *word, const struct df_env *env, int escape, kn_error **err);
/* Convenience: the split words (owned, NULL-terminated; free with kn_strv_free) or NULL. */
char **df_expand_words(const char *word, const struct df_env *env, int escape, kn_error **err);

/* ---- dockerignore ------------------------------------------------------------------------- */

/**
 * A compiled list of .dockerignore patterns (moby/patternmatcher semantics): each pattern is
 * cleaned like Go's filepath.Clean, a leading '!' makes it an exception, `*` and `?` never
 * match '/', `**` matches any number of directories, `[...]` is a class with ranges and '^'
 * negation, '\\' escapes. A path is excluded when the last pattern that matches it (or one of
 * its parent directories) is not an exception. Immutable after creation: safe to share
 * between threads. Free with df_ignore_free().
 */
struct df_ignore;

/**
 * Reads .dockerignore text (docker's ignorefile.ReadAll): UTF-8 BOM dropped, lines starting with
 * '#' are comments, lines trimmed, blank lines skipped, each pattern (after a '!') cleaned,
 * a leading '/' removed. Appends the patterns, in order, to ret_patterns.
 */
void df_ignore_read(const char *text, size_t len, struct kn_strv *ret_patterns);
/**
 * Compiles patterns (n of them; NULL-terminated is not required). Errors: "illegal exclusion
 * pattern: \"!\"" and bad patterns ("syntax error in pattern 'x'"), EINVAL.
 */
int df_ignore_new(char *const *patterns, size_t n, struct df_ignore **ret, kn_error **err);
/* df_ignore_read() + df_ignore_new() on the text of a .dockerignore file. */
int df_ignore_parse(const char *text, size_t len, struct df_ignore **ret, kn_error **err);
void df_ignore_free(struct df_ignore *m);
/* Number of compiled patterns, and whether any is an exception. */
size_t df_ignore_count(const struct df_ignore *m);
bool df_ignore_has_exceptions(const struct df_ignore *m);
/**
 * Whether path (relative to the context root, '/'-separated; it is cleaned first, a leading '/'
 * or "./" is ignored) is excluded (MatchesOrParentMatches). The context root itself ("." or "")
 * is never excluded. m may be NULL (nothing excluded).
 */
bool df_ignore_matches(const struct df_ignore *m, const char *path);
/**
 * For a walk of the context: whether the directory dir can be skipped entirely, i.e. it is
 * excluded and no exception pattern could re-include dir or anything below it. When this is
 * false for an excluded directory, walk into it and test each entry with df_ignore_matches().
 */
bool df_ignore_dir_skippable(const struct df_ignore *m, const char *dir);
/**
 * The ignore files to try, in order, for a build (BuildKit's rule): "<dockerfile>.dockerignore"
 * beside the Dockerfile, then "<context>/.dockerignore". The first that exists is used (only
 * one). Returns an owned NULL-terminated list (kn_strv_free); dockerfile_path may be NULL (only
 * the context file is returned).
 */
char **df_ignore_candidates(const char *context_dir, const char *dockerfile_path);

/* ---- instructions and plan ---------------------------------------------------------------- */

enum df_instr_kind {
	DF_INSTR_FROM,
	DF_INSTR_RUN,
	DF_INSTR_CMD,
	DF_INSTR_ENTRYPOINT,
	DF_INSTR_SHELL,
	DF_INSTR_ENV,
	DF_INSTR_ARG,
	DF_INSTR_LABEL,
	DF_INSTR_EXPOSE,
	DF_INSTR_WORKDIR,
	DF_INSTR_USER,
	DF_INSTR_VOLUME,
	DF_INSTR_COPY,
	DF_INSTR_ADD,
	DF_INSTR_STOPSIGNAL,
	DF_INSTR_HEALTHCHECK,
	DF_INSTR_ONBUILD,
	DF_INSTR_MAINTAINER,
};

/* "RUN", "COPY", ... for a kind. */
const char *df_instr_kind_name(enum df_instr_kind kind);

/** A key and value (ENV, LABEL, ARG). value NULL: no value given (a bare `ARG name`). */
struct df_kv {
	char *key;
	char *value;
};

/**
 * A command line (RUN, CMD, ENTRYPOINT, HEALTHCHECK CMD). Exec form (json): argv is the array.
 * Shell form: argv[0] is the whole command text and the builder prepends the stage's SHELL.
 * heredocs (RUN only): the heredoc bodies of the line, content as in the AST (apply
 * df_heredoc_chomp()); BuildKit runs a lone heredoc as the script when the command is "<<EOF".
 * ENTRYPOINT with an empty JSON array (json, argv[0] == NULL) resets the entrypoint.
 */
struct df_cmdline {
	char **argv;	/* NULL-terminated */
	bool json;
	struct df_heredoc *heredocs;
	size_t n_heredocs;
};

enum df_mount_type { DF_MOUNT_BIND, DF_MOUNT_CACHE, DF_MOUNT_TMPFS, DF_MOUNT_SECRET, DF_MOUNT_SSH };
enum df_mount_sharing { DF_SHARING_SHARED, DF_SHARING_PRIVATE, DF_SHARING_LOCKED };

/**
 * One RUN --mount, with BuildKit's defaults applied: target "/run/secrets/<id>" for a secret
 * without target, "/run/buildkit/ssh_agent.<n>" for ssh, id = target for cache and "default"
 * for ssh, readonly for bind (rw for cache/tmpfs), mode 0400 for secret/ssh, 0755 for cache.
 * Option values are expanded by df_instr_expand().
 */
struct df_mount {
	enum df_mount_type type;
	char *target;
	char *source;	/* source=/src=, NULL when not given */
	char *from;	/* from= (stage name, index or image), NULL when not given */
	bool readonly;
	char *id;
	enum df_mount_sharing sharing;
	long mode;	/* -1 when not given and no default */
	long uid;	/* -1 when not given */
	long gid;	/* -1 when not given */
	bool required;
	unsigned long long size;	/* tmpfs size in bytes, 0 when not given */
	char *env;	/* secret env= name, NULL when not given */
	char *raw;	/* the --mount value as written (df_instr_expand re-parses it expanded) */
};

enum df_network { DF_NETWORK_DEFAULT, DF_NETWORK_NONE, DF_NETWORK_HOST };
enum df_security { DF_SECURITY_SANDBOX, DF_SECURITY_INSECURE };

/** Durations are nanoseconds; 0 means "not given" (docker's default applies). */
struct df_healthcheck {
	bool none;		/* HEALTHCHECK NONE */
	struct df_cmdline test;	/* CMD: json=true is ["CMD", ...], false is CMD-SHELL */
	long long interval;
	long long timeout;
	long long start_period;
	long long start_interval;
	int retries;		/* 0 = not given */
};

/**
 * One typed instruction. file (owned copy), line/end_line (1-based, the instruction's lines) and
 * col (1) locate it; original is its text. escape is the file's escape character, needed to
 * expand its words later. The union member matching kind is valid. Words are kept as written
 * (unexpanded) in a plan's instructions; df_instr_expand() returns an expanded copy whose
 * matched/unmatched list the variables the expansion used (empty in unexpanded instructions).
 * All strings and arrays are owned; free with df_instr_free().
 */
struct df_instr {
	enum df_instr_kind kind;
	char *file;
	int line;
	int end_line;
	int col;
	char *original;
	int escape;
	struct kn_strv matched;
	struct kn_strv unmatched;
	union {
		struct {
			char *base;	/* image or stage reference as written */
			char *name;	/* AS name, lower-cased, NULL when none */
			char *platform;	/* --platform, NULL when none */
		} from;
		struct {
			struct df_cmdline cmd;
			struct df_mount *mounts;
			size_t n_mounts;
			enum df_network network;
			enum df_security security;
		} run;
		struct df_cmdline cmd;	/* CMD and ENTRYPOINT */
		struct {
			char **argv;	/* NULL-terminated */
		} shell;
		struct {
			struct df_kv *kvs;
			size_t n;
		} kv;	/* ENV, ARG and LABEL */
		struct {
			char **ports;	/* NULL-terminated words: "80", "80/tcp", "8000-8010/udp" */
		} expose;
		struct {
			char *path;
		} workdir;
		struct {
			char *user;
		} user;
		struct {
			char **paths;	/* NULL-terminated */
		} volume;
		struct {
			char **sources;	/* NULL-terminated, as written (may be globs or URLs) */
			char *dest;
			/* inline sources (`COPY <<EOF /dst`): name = the file name, content as in the
			 * AST. In the copy df_instr_expand() returns, content is final: chomped (<<-)
			 * and expanded (unquoted delimiter), and chomp and expand are false */
			struct df_heredoc *heredocs;
			size_t n_heredocs;
			char *from;	/* --from, NULL when none */
			char *chown;	/* --chown, NULL when none */
			char *chmod;	/* --chmod, NULL when none (see df_chmod_parse) */
			bool link;
			bool parents;
			char **excludes;	/* NULL-terminated --exclude patterns (never NULL) */
			char *checksum;	/* ADD --checksum, NULL when none */
			bool keep_git_dir;	/* ADD --keep-git-dir */
		} copy;	/* COPY and ADD */
		struct {
			char *signal;
		} stopsignal;
		struct df_healthcheck healthcheck;
		struct {
			char *expression;	/* the trigger instruction's text, e.g. "RUN make" */
		} onbuild;
		struct {
			char *name;
		} maintainer;
	};
};

void df_instr_free(struct df_instr *in);
DEFINE_FREEP(struct df_instr, df_instr_free)

/**
 * Converts one instruction node of the AST (a child of the root) into a typed instruction,
 * checking every flag and value the way BuildKit's instructions.Parse does. file names the
 * source in errors ("Dockerfile:4:1: ..."); escape is the file's escape character. On failure
 * *err names file:line:col.
 */
int df_instr_parse(const struct df_node *node, const char *file, int escape,
		   struct df_instr **ret, kn_error **err);

/**
 * Returns (in *ret, owned) a copy of in with every word Docker expands expanded against env:
 * FROM base/platform, ENV/LABEL keys and values, ARG defaults, EXPOSE, WORKDIR, USER, VOLUME,
 * STOPSIGNAL, COPY/ADD sources, dest, --from, --chown, --chmod, --exclude, --checksum, and the
 * RUN --mount option values. RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD, MAINTAINER are
 * copied as written (the shell expands them). (*ret)->matched lists the variables used.
 * Errors name the instruction's file:line.
 */
int df_instr_expand(const struct df_instr *in, const struct df_env *env, struct df_instr **ret,
		    kn_error **err);

/** A parsed COPY/ADD --chmod: octal ("755") or symbolic ("u+x,g-w", "a=rX"). */
struct df_chmod {
	bool symbolic;
	unsigned int mode;	/* octal form */
	char *spec;		/* symbolic form, validated */
};
int df_chmod_parse(const char *s, struct df_chmod *ret, kn_error **err);
void df_chmod_release(struct df_chmod *c);
/* The new mode of a file with mode cur (is_dir: X applies) under c. */
unsigned int df_chmod_apply(const struct df_chmod *c, unsigned int cur, bool is_dir);

/** One EXPOSE port after expansion: "8000-8010/udp" gives 8000, 8010, "udp". */
struct df_port {
	unsigned int start;
	unsigned int end;
	char proto[8];	/* "tcp", "udp" or "sctp" */
};
int df_port_parse(const char *s, struct df_port *ret, kn_error **err);

/** A parsed duration ("30s", "1m30s", "1.5h", "100ms"), as Go's time.ParseDuration. */
int df_duration_parse(const char *s, long long *ret_ns, kn_error **err);

enum df_base_kind { DF_BASE_SCRATCH, DF_BASE_STAGE, DF_BASE_IMAGE };
enum df_dep_kind { DF_DEP_STAGE, DF_DEP_IMAGE };

/**
 * A dependency of a stage. via: "from" (its FROM), "copy" (COPY/ADD --from) or "mount"
 * (RUN --mount from=). instr is the index in stage->instrs of the instruction that needs it
 * (SIZE_MAX for the FROM). stage (DF_DEP_STAGE) or image (DF_DEP_IMAGE, an expanded reference).
 */
struct df_dep {
	enum df_dep_kind kind;
	size_t stage;
	char *image;
	const char *via;
	size_t instr;
};

/**
 * One build stage. name: lower-cased AS name or NULL. base_kind and base_stage / base_image: the
 * FROM after ARG expansion with the global (meta) ARGs. platform: the expanded FROM --platform or
 * NULL. skipped: the target does not need this stage. instrs: the stage's instructions after
 * its FROM, unexpanded (expand them at build time with df_stage_env). deps: every stage and
 * image this stage needs, in instruction order, without duplicates.
 */
struct df_stage {
	size_t index;
	char *name;
	struct df_instr *from;
	enum df_base_kind base_kind;
	size_t base_stage;
	char *base_image;
	char *platform;
	bool skipped;
	struct df_instr **instrs;
	size_t n_instrs;
	struct df_dep *deps;
	size_t n_deps;
};

/** A platform "os/arch[/variant]". */
struct df_platform {
	char *os;
	char *arch;
	char *variant;	/* "" when none */
};

struct df_plan_opts {
	const char *file;	/* name used in errors, e.g. "Dockerfile" (NULL: "Dockerfile") */
	const char *target;	/* --target (stage name or index); NULL: the last stage */
	char *const *build_args;	/* NULL-terminated "K=V" (a bare "K" is ignored) or NULL */
	const char *platform;	/* target platform "os/arch[/variant]"; NULL: native */
};

/**
 * The stage graph of a Dockerfile. meta_args: the global ARGs (declared before the first FROM,
 * with --build-arg overrides) plus the automatic TARGETPLATFORM, BUILDPLATFORM (and OS, ARCH, VARIANT) ARGs; build_args: the
 * --build-arg values given; unused_build_args: build args no built stage declares and that are
 * not predefined (docker warns "[Warning] One or more build-args [a b] were not consumed").
 * The plan owns copies of everything; the AST can be freed. Free with df_plan_free().
 */
struct df_plan {
	char *file;
	int escape;
	struct df_stage *stages;
	size_t n_stages;
	size_t target;
	struct df_env meta_args;
	struct df_env build_args;
	struct kn_strv unused_build_args;
	struct df_platform build_platform;
	struct df_platform target_platform;
	struct df_instr **global_args;	/* the ARG instructions before the first FROM */
	size_t n_global_args;
	size_t *expanded;	/* private: substitution bytes so far (atomic; stages expand in threads) */
};

/** Stage count and other limits checked by df_plan_build(). */
#define DF_PLAN_MAX_STAGES 100000
/**
 * Bytes substitution may put in over the whole plan (global ARGs, FROM, and every instruction
 * df_stage_env_expand() expands, in any stage): 32 MiB. Each word is also held to
 * DF_EXPAND_MAX_LEN. Past it the expansion fails with the instruction's file:line.
 */
#define DF_PLAN_MAX_EXPANDED (32u << 20)

/**
 * Builds the plan from the AST root (df_parse's result) with escape the file's escape character.
 * Errors (with file:line:col): bad instructions, FROM missing, duplicate stage names, invalid
 * stage names, unknown --target, invalid stage indexes, dependency cycles.
 */
int df_plan_build(const struct df_node *root, int escape, const struct df_plan_opts *opts,
		  struct df_plan **ret, kn_error **err);
void df_plan_free(struct df_plan *plan);
DEFINE_FREEP(struct df_plan, df_plan_free)

/* The native platform from uname(2): linux/amd64, linux/arm64, linux/arm/v7, ... */
int df_platform_native(struct df_platform *ret, kn_error **err);
/* Parses "os/arch[/variant]" (normalized: aarch64 -> arm64, x86_64 -> amd64). */
int df_platform_parse(const char *s, struct df_platform *ret, kn_error **err);
void df_platform_release(struct df_platform *p);
/* "os/arch" or "os/arch/variant" (owned). */
char *df_platform_format(const struct df_platform *p);

/**
 * Running variable state of one stage while it is built, for the builder:
 *   df_stage_env_init(&se, plan, stage, base_image_env)   (base image config Env, "K=V" list)
 *   for each instr: df_stage_env_expand(&se, instr, &x)   (expanded copy, x->matched = vars used)
 *                   ... execute x ...
 *                   df_stage_env_apply(&se, x)            (ENV and ARG update the state)
 * env is the image config Env (base env, then ENV instructions). args are the ARGs in scope
 * with a value (build-arg override, else default, else the global value for a bare re-declared
 * global ARG or automatic platform ARG): RUN has args + env in its environment (env wins), and
 * the builder folds the used args' values into cache keys. Predefined proxy ARGs given as build
 * args (HTTP_PROXY ...) are in args without a declaration (docker excludes them from history).
 */
struct df_stage_env {
	const struct df_plan *plan;	/* borrowed */
	struct df_env env;
	struct df_env args;
	struct df_env lookup;	/* private: args overlaid by env, kept up to date by _apply */
};
int df_stage_env_init(struct df_stage_env *se, const struct df_plan *plan,
		      const struct df_stage *stage, char *const *base_env, kn_error **err);
/* A stage FROM another stage starts with the ARG values that stage had declared (BuildKit);
 * there the image's ENV wins over them. */
void df_stage_env_inherit_args(struct df_stage_env *se, const struct df_env *args);
void df_stage_env_release(struct df_stage_env *se);
/* The expansion environment: declared args and env, the later declaration winning; undeclared
 * proxy args are in args (for RUN) but not here. Owned by the caller. */
void df_stage_env_lookup_env(const struct df_stage_env *se, struct df_env *ret);
int df_stage_env_expand(const struct df_stage_env *se, const struct df_instr *in,
			struct df_instr **ret, kn_error **err);
int df_stage_env_apply(struct df_stage_env *se, const struct df_instr *expanded, kn_error **err);

/**
 * Writes the plan as text (the `kiln parse --plan` format, documented in kiln-parse(1)):
 *   global args: A="1" B                  (when there are ARGs before the first FROM)
 *   <blank line>
 *   stage <index> [name]
 *     base: scratch | stage <i> [name] | image <ref>
 *     platform: <p>                       (only when FROM --platform)
 *     deps: none | stage 0 build (copy), image alpine (from), ...
 *     skipped: yes|no
 *     <line>: <INSTRUCTION expanded on one line; FROM first>
 * blocks separated by a blank line, then "target: <index> [name]" and, when build args went
 * unused, "unused build args: a b". Every variable is expanded with an empty base image env (a
 * stage FROM another stage starts from that stage's env). An expansion error in a needed stage
 * fails (*err, located); in a skipped stage the line is printed as written, "(not expanded)".
 */
int df_plan_format(const struct df_plan *plan, struct kn_buf *out, kn_error **err);

#endif
