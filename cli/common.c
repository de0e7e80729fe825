#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/userns.h"
#include "cli/cli.h"
#include "layers/layers.h"
#include "registry/registry.h"

static char *root_override;
static char *root_default;

int cli_fail(kn_error *err)
{
	_cleanup_free_ char *msg = kn_error_format(err);

	fprintf(stderr, "kiln: %s\n", msg);
	kn_error_free(err);
	return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kiln%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nSee 'kiln%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
	return CLI_EXIT_USAGE;
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("kiln: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_set_root(const char *dir)
{
	free(root_override);
	root_override = xstrdup(dir);
}

const char *cli_root(void)
{
	const char *env;

	if (root_override)
		return root_override;
	env = getenv("KILN_ROOT");
	if (env && *env)
		return env;
	if (!root_default) {
		const char *xdg = getenv("XDG_DATA_HOME");
		const char *home = getenv("HOME");

		/* The uid kiln started with: a rootless user is root only in its namespace. */
		if (kn_userns_host_uid() == 0)
			root_default = xstrdup("/var/lib/kiln");
		else if (xdg && *xdg)
			root_default = xasprintf("%s/kiln", xdg);
		else
			root_default = xasprintf("%s/.local/share/kiln", home && *home ? home : ".");
	}
	return root_default;
}

int cli_parse_bool(const char *v)
{
	if (!v || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
		return 1;
	if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
		return 0;
	return -1;
}

const char *cli_short_digest(const char *digest)
{
	static __thread char s[13];
	const char *hex = strchr(digest, ':');

	snprintf(s, sizeof(s), "%s", hex ? hex + 1 : digest);
	return s;
}

void cli_getopt_reset(void)
{
	optind = 0;
	opterr = 0;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
	       const struct option *longopts)
{
	int c;

	/* A leading '+' stops at the first operand; ':' makes a missing argument return ':'. */
	c = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (c == ':') {
		cli_usage_error(cmd, "option '%s' requires an argument", argv[optind - 1]);
		return '?';
	}
	if (c == '?') {
		if (optopt)
			cli_usage_error(cmd, "unknown option '-%c'", optopt);
		else
			cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		return '?';
	}
	return c;
}

int cli_store_open_read(struct store **ret, kn_error **err)
{
	struct stat st;

	/* A typo in --root must not read as an empty store. */
	if (stat(cli_root(), &st) < 0 && errno == ENOENT)
		return kn_error_set(err, ENOENT,
				    "no image store at '%s': the directory does not exist (kiln build, "
				    "pull, load or import create it)", cli_root());
	return store_open(cli_root(), 0, ret, err);
}

int cli_check_writable(const char *path, const char *what, kn_error **err)
{
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *dir = NULL;
	struct stat st;

	if (!stat(path, &st) && S_ISDIR(st.st_mode))
		return kn_error_set(err, EISDIR, "%s '%s' is a directory", what, path);
	if (!slash)
		dir = xstrdup(".");
	else
		dir = xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return kn_error_set(err, ENOENT, "%s '%s': the directory '%s' does not exist", what,
				    path, dir);
	if (access(dir, W_OK) < 0)
		return kn_error_set(err, EACCES, "%s '%s': the directory '%s' is not writable", what,
				    path, dir);
	return 0;
}

int cli_auth_hint(kn_error **err, const char *ref)
{
	_cleanup_(reg_credentials_freep) struct reg_credentials *cred = NULL;
	struct reg_ref *r = NULL;
	kn_error *e = NULL;
	char *msg;

	if (!err || !*err || (*err)->code != EACCES || !ref || reg_ref_parse(ref, &r, NULL) < 0)
		return -1;
	/* A refusal despite stored credentials: they are stale (a new password, an expired token). */
	if (reg_credentials_lookup(r->domain, NULL, &cred, &e) < 0)
		kn_error_free(e);
	if (cred)
		msg = xasprintf("%s (the stored credentials for '%s' were refused: run 'kiln login %s' "
				"again)", (*err)->msg, r->domain, r->domain);
	else
		msg = xasprintf("%s (run 'kiln login %s' first)", (*err)->msg, r->domain);
	free((*err)->msg);
	(*err)->msg = msg;
	reg_ref_free(r);
	return -1;
}
