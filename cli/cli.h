/* kiln CLI: shared helpers for the subcommands (argument parsing and printing only). */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "base/base.h"

/** Exit codes: 0 success, 1 failure, 2 usage error (unknown command, flag or bad arguments). */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

struct cli_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

/* Prints "kiln: <error>" once to stderr, frees err and returns CLI_EXIT_FAIL. */
int cli_fail(kn_error *err);
/* Prints "kiln <cmd>: <msg>" and a pointer to --help on stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a warning line "kiln: warning: ..." on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The store root: the last --root given (globally or to the command), else $KILN_ROOT, else
 * /var/lib/kiln for root and $XDG_DATA_HOME/kiln (or ~/.local/share/kiln) for other users.
 */
void cli_set_root(const char *dir);
const char *cli_root(void);
/*
 * Opens the store for reading commands (images, inspect, save, fsck): a root that does not exist
 * is an error saying so. Writing commands open it with STORE_WRITE, which creates it.
 */
struct store;
int cli_store_open_read(struct store **ret, kn_error **err);
/*
 * Checks, before any work, that a file the command writes at the end (--iidfile, --digestfile)
 * can be created: not a directory, in a directory that exists and is writable. what names the
 * option in the message.
 */
int cli_check_writable(const char *path, const char *what, kn_error **err);
/*
 * When *err is a registry refusal (EACCES) for ref, adds what to do: "run 'kiln login HOST'
 * first", or "again" when credentials for HOST are stored (they are stale). Returns -1.
 */
int cli_auth_hint(kn_error **err, const char *ref);

/*
 * Every store-touching command adds CLI_OPT_ROOT_ENTRY to its long options and handles
 * `case CLI_OPT_ROOT: cli_set_root(optarg); break;`. Each command handles "help" (-h/--help)
 * by printing its usage on stdout and returning 0.
 */
#define CLI_OPT_ROOT 0x1000
#define CLI_OPT_ROOT_ENTRY { "root", required_argument, NULL, CLI_OPT_ROOT }

/*
 * Runs getopt_long over argv for command `cmd`, resetting getopt state first. Unknown options
 * and missing arguments are reported by cli_getopt itself: it returns '?' and the command
 * returns CLI_EXIT_USAGE.
 */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
	       const struct option *longopts);
void cli_getopt_reset(void);

/*
 * Parses a boolean option value: true/1/yes or false/0/no; NULL (the flag given alone) is true.
 * Returns 1 or 0, or -1 when the value is none of these.
 */
int cli_parse_bool(const char *v);
/* Docker's short digest: the first 12 hex characters after "alg:". Returns a thread-local buffer. */
const char *cli_short_digest(const char *digest);

/*
 * Progress display shared by build, pull, push, load and save (cli/progress.c). The mode is
 * chosen with --progress: auto (tty when the output is a terminal and TERM is not "dumb", else
 * plain), plain, tty, quiet or rawjson (one JSON object per event; see kiln-build(1)).
 */
enum cli_progress_mode {
	CLI_PROGRESS_AUTO = 0,
	CLI_PROGRESS_PLAIN,
	CLI_PROGRESS_TTY,
	CLI_PROGRESS_QUIET,
	CLI_PROGRESS_RAWJSON,
};
struct cli_progress;
struct bld_event;
struct reg_transfer_event;

/* Parses a --progress value; returns -1 (and leaves *ret_mode) when it names no mode. */
int cli_progress_mode_parse(const char *s, enum cli_progress_mode *ret_mode);
/*
 * A display writing to out; AUTO is resolved here. action names the work in the tty view's
 * header ("Building", "Pulling"). The tty mode starts a redraw thread and a SIGWINCH handler;
 * both end in cli_progress_finish() or cli_progress_free().
 */
struct cli_progress *cli_progress_new(enum cli_progress_mode mode, FILE *out, const char *action);
void cli_progress_free(struct cli_progress *p);
DEFINE_FREEP(struct cli_progress, cli_progress_free)
/* The resolved mode (never AUTO). */
enum cli_progress_mode cli_progress_mode(const struct cli_progress *p);
/* Seconds since cli_progress_new(). */
double cli_progress_elapsed(const struct cli_progress *p);
/* A bld_progress_fn: userdata is the struct cli_progress. */
void cli_progress_build_event(const struct bld_event *ev, void *userdata);
/*
 * reg_transfer_progress_fn for pulls and pushes: userdata is the struct cli_progress. The plain
 * mode speaks docker's words ("<id>: Pull complete", "<id>: Pushed", "Layer already exists").
 */
void cli_progress_pull_event(const struct reg_transfer_event *ev, void *userdata);
void cli_progress_push_event(const struct reg_transfer_event *ev, void *userdata);
/* A line outside any step (warning: "WARNING: " in front), above the live view in tty mode. */
void cli_progress_message(struct cli_progress *p, bool warning, const char *text);
/* Ends the display: the final screen, or what is pending before an error (ok false). */
void cli_progress_finish(struct cli_progress *p, bool ok);
/* CLOCK_MONOTONIC in nanoseconds. */
unsigned long long cli_now_ns(void);

/*
 * --format templates (cli/template.c): Go text/template syntax over a JSON object, as docker
 * users write them: {{.Field}}, {{.A.B}}, {{.}}, {{json .X}}, {{upper .X}}, {{lower .X}},
 * {{len .X}}, {{join .X "sep"}}, {{index .X "key"}}; "table" in front aligns tab-separated
 * columns under a header; \t and \n are a tab and a newline. Parse errors are EINVAL with a
 * message naming the action (a usage error for the caller).
 */
struct cli_template;
int cli_template_parse(const char *format, struct cli_template **ret, kn_error **err);
void cli_template_free(struct cli_template *t);
DEFINE_FREEP(struct cli_template, cli_template_free)
bool cli_template_is_table(const struct cli_template *t);
/* True for "table" alone: the command's default columns. */
bool cli_template_is_empty(const struct cli_template *t);
/* Appends the expansion over data to out; an unknown field is an error. */
int cli_template_exec(const struct cli_template *t, json_t *data, struct kn_buf *out, kn_error **err);
/* The header line of a table: each action's last field name through name() (NULL: upper-cased). */
void cli_template_header(const struct cli_template *t, const char *(*name)(const char *field),
			 struct kn_buf *out);
/* Prints lines of tab-separated cells as aligned columns (docker's tabwriter: min 10, padding 3). */
void cli_print_columns(char *const *lines);

/* The command table, defined in main.c. */
extern const struct cli_cmd cli_commands[];

/* Commands: each lives in cli/cmd-<name>.c. */
/* KILN-COMMAND-DECLARATIONS (keep sorted; one line per command) */
int cmd_build(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_images(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_login(int argc, char **argv);
int cmd_logout(int argc, char **argv);
int cmd_parse(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_rmi(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_tag(int argc, char **argv);

#endif
