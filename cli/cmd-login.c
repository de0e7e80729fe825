/* kiln login: check credentials against a registry and store them in Docker's config.json. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "registry/registry.h"

#define PASSWORD_MAX 65536

static void usage(FILE *out)
{
	fputs("Usage: kiln login [OPTIONS] REGISTRY\n"
	      "\n"
	      "Log in to a registry: check the credentials, then store them in Docker's config.json\n"
	      "($DOCKER_CONFIG/config.json or ~/.docker/config.json) or its credential helper.\n"
	      "\n"
	      "Options:\n"
	      "  -u, --username USER    user name (prompted for on a terminal when missing)\n"
	      "  -p, --password PASS    password (insecure: visible to other users; prefer --password-stdin)\n"
	      "      --password-stdin   read the password from standard input\n"
	      "      --tls-verify=BOOL  verify the registry's TLS certificate (default true)\n"
	      "  -h, --help             show this help\n",
	      out);
}

/* Reads one line from fd (without the newline); echo off when it is a terminal and !echo. */
static char *read_line_fd(int fd, bool echo, kn_error **err)
{
	struct termios old, noecho;
	bool restore = false;
	struct kn_buf b = KN_BUF_INIT;
	char c;
	ssize_t n;

	if (!echo && isatty(fd) && tcgetattr(fd, &old) == 0) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		noecho.c_lflag |= ECHONL;
		if (tcsetattr(fd, TCSAFLUSH, &noecho) == 0)
			restore = true;
	}
	for (;;) {
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n')
			break;
		if (b.len >= PASSWORD_MAX)
			break;
		kn_buf_addch(&b, c);
	}
	if (restore)
		(void)tcsetattr(fd, TCSAFLUSH, &old);
	if (n < 0) {
		explicit_bzero(b.buf, b.len);
		kn_buf_release(&b);
		kn_error_errno(err, "reading from the terminal");
		return NULL;
	}
	if (b.len > 0 && b.buf[b.len - 1] == '\r')
		kn_buf_setlen(&b, b.len - 1);
	return kn_buf_detach(&b);
}

static char *prompt(const char *what, bool echo, kn_error **err)
{
	_cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);

	if (fd < 0 || !isatty(fd)) {
		kn_error_set(err, EINVAL, "no %s given and no terminal to ask for it (use %s)", what,
			     echo ? "--username" : "--password-stdin");
		return NULL;
	}
	if (write(fd, what, strlen(what)) < 0 || write(fd, ": ", 2) < 0) {
		kn_error_errno(err, "writing to the terminal");
		return NULL;
	}
	return read_line_fd(fd, echo, err);
}

static void secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

enum { OPT_PASSWORD_STDIN = 0x100, OPT_TLS_VERIFY };

int cmd_login(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "username", required_argument, NULL, 'u' },
		{ "password", required_argument, NULL, 'p' },
		{ "password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN },
		{ "tls-verify", optional_argument, NULL, OPT_TLS_VERIFY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_free_ char *user = NULL;
	_cleanup_free_ char *where = NULL;
	char *pass = NULL;
	bool pass_stdin = false;
	int tls_verify = -1;
	struct reg_opts opts;
	kn_error *err = NULL;
	int c, r;

	while ((c = cli_getopt("login", argc, argv, ":u:p:h", longopts)) != -1) {
		switch (c) {
		case 'u':
			free(user);
			user = xstrdup(optarg);
			break;
		case 'p':
			secret_free(pass);
			pass = xstrdup(optarg);
			/* Hide it from ps where we can. */
			explicit_bzero(optarg, strlen(optarg));
			break;
		case OPT_PASSWORD_STDIN:
			pass_stdin = true;
			break;
		case OPT_TLS_VERIFY:
			tls_verify = cli_parse_bool(optarg);
			if (tls_verify < 0) {
				secret_free(pass);
				return cli_usage_error("login", "invalid value '%s' for --tls-verify", optarg);
			}
			break;
		case 'h':
			secret_free(pass);
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			secret_free(pass);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		secret_free(pass);
		return cli_usage_error("login", optind >= argc ? "a registry is required" : "too many arguments");
	}
	if (pass && pass_stdin) {
		secret_free(pass);
		return cli_usage_error("login", "--password and --password-stdin are mutually exclusive");
	}
	if (pass_stdin && !user)
		return cli_usage_error("login", "--password-stdin needs --username");
	if (pass)
		cli_warn("using --password on the command line is insecure; use --password-stdin");

	if (!user) {
		user = prompt("Username", true, &err);
		if (!user) {
			secret_free(pass);
			return cli_fail(err);
		}
	}
	if (pass_stdin) {
		struct kn_buf b = KN_BUF_INIT;

		if (kn_read_fd(STDIN_FILENO, PASSWORD_MAX, &b, &err) < 0)
			return cli_fail(err);
		while (b.len > 0 && (b.buf[b.len - 1] == '\n' || b.buf[b.len - 1] == '\r'))
			kn_buf_setlen(&b, b.len - 1);
		pass = kn_buf_detach(&b);
	} else if (!pass) {
		pass = prompt("Password", false, &err);
		if (!pass)
			return cli_fail(err);
	}

	reg_opts_init(&opts);
	opts.tls_verify = tls_verify;
	r = reg_login(argv[optind], user, pass, &opts, &where, &err);
	secret_free(pass);
	if (r < 0)
		return cli_fail(err);
	if (where && strncmp(where, "docker-credential-", 18))
		cli_warn("the password is stored unencrypted in '%s'; configure a credential helper (credsStore) to avoid it",
			 where);
	printf("Login Succeeded\n");
	return CLI_EXIT_OK;
}
