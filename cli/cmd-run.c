/* kiln run: run a command in a new container from an image, in the foreground (docker run). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"

static void usage(void)
{
	fputs(
	    "Usage: kiln run [OPTIONS] IMAGE [COMMAND [ARG...]]\n"
	    "\n"
	    "Run a command in a new container from IMAGE, in the foreground, as docker run does.\n"
	    "The container is always removed when it exits (as with --rm): keep data in a -v\n"
	    "volume. Exit status: the container's (128+N when killed by signal N); 125 when kiln\n"
	    "could not run it, 126 when the command cannot be executed, 127 when it is not found.\n"
	    "\n"
	    "Options:\n"
	    "      --entrypoint CMD     run CMD instead of the image's ENTRYPOINT (clears its "
	    "CMD)\n"
	    "  -e, --env K=V|K          set a variable (K alone: its value here, or unset it)\n"
	    "      --env-file FILE      read variables from FILE (K=V or K per line)\n"
	    "  -h, --hostname NAME      the container's host name\n"
	    "      --init               run kiln's reaper as PID 1 (signals, zombies)\n"
	    "  -i, --interactive        keep stdin attached\n"
	    "      --name NAME          name the container (one running container per name)\n"
	    "      --network MODE       'host' (default: the host's network) or 'none'\n"
	    "  -p, --publish SPEC       not needed: with the host's network ports are shared\n"
	    "      --read-only          mount the root file system read-only\n"
	    "      --rm                 remove the container when it exits (always done)\n"
	    "      --stop-signal SIG    signal that stops the container (default: the image's)\n"
	    "      --stop-timeout N     seconds to wait after the stop signal before SIGKILL\n"
	    "                           (default 10; -1: wait forever)\n"
	    "  -t, --tty                allocate a pseudo-terminal\n"
	    "      --tmpfs PATH[:OPTS]  mount a tmpfs (OPTS: size=, mode=, exec, ro)\n"
	    "  -u, --user USER[:GROUP]  user (name or uid) and group to run as\n"
	    "  -v, --volume HOST:CTR[:ro]  bind mount a host directory or file\n"
	    "  -w, --workdir DIR        working directory inside the container\n"
	    "      --root DIR           local image store\n"
	    "      --help               show this help\n",
	    stdout);
}

/* -e K / --env-file K: the value from this environment, or a bare K (docker then unsets K). */
static void push_env(struct kn_strv *env, const char *e)
{
	const char *v;

	if (strchr(e, '=') || !(v = getenv(e)))
		kn_strv_push(env, e);
	else
		kn_strv_pushf(env, "%s=%s", e, v);
}

int cmd_run(int argc, char **argv)
{
	enum {
		OPT_RM = 0x100,
		OPT_NAME,
		OPT_ENV_FILE,
		OPT_TMPFS,
		OPT_ENTRYPOINT,
		OPT_NETWORK,
		OPT_READ_ONLY,
		OPT_INIT,
		OPT_STOP_TIMEOUT,
		OPT_STOP_SIGNAL,
		OPT_HELP,
	};
	static const struct option opts[] = {
	    {"rm", no_argument, NULL, OPT_RM},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"env", required_argument, NULL, 'e'},
	    {"env-file", required_argument, NULL, OPT_ENV_FILE},
	    {"volume", required_argument, NULL, 'v'},
	    {"tmpfs", required_argument, NULL, OPT_TMPFS},
	    {"workdir", required_argument, NULL, 'w'},
	    {"user", required_argument, NULL, 'u'},
	    {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
	    {"network", required_argument, NULL, OPT_NETWORK},
	    {"net", required_argument, NULL, OPT_NETWORK},
	    {"hostname", required_argument, NULL, 'h'},
	    {"read-only", no_argument, NULL, OPT_READ_ONLY},
	    {"init", no_argument, NULL, OPT_INIT},
	    {"interactive", no_argument, NULL, 'i'},
	    {"tty", no_argument, NULL, 't'},
	    {"publish", required_argument, NULL, 'p'},
	    {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
	    {"stop-signal", required_argument, NULL, OPT_STOP_SIGNAL},
	    {"help", no_argument, NULL, OPT_HELP},
	    CLI_OPT_ROOT_ENTRY,
	    {NULL, 0, NULL, 0},
	};
	struct kn_strv env = KN_STRV_INIT, env_files = KN_STRV_INIT, cli_env = KN_STRV_INIT;
	struct kn_strv volumes = KN_STRV_INIT, tmpfs = KN_STRV_INIT, publish = KN_STRV_INIT;
	struct run_options o;
	kn_error *err = NULL;
	int c, status = CLI_EXIT_USAGE;

	run_options_init(&o);
	while ((c = cli_getopt("run", argc, argv, "+:e:v:w:u:h:itp:", opts)) != -1) {
		switch (c) {
		case OPT_HELP:
			usage();
			status = CLI_EXIT_OK;
			goto out;
		case OPT_RM:
			break; /* every container is removed when it exits */
		case OPT_NAME:
			o.name = optarg;
			break;
		case 'e':
			kn_strv_push(&cli_env, optarg);
			break;
		case OPT_ENV_FILE:
			kn_strv_push(&env_files, optarg);
			break;
		case 'v':
			kn_strv_push(&volumes, optarg);
			break;
		case OPT_TMPFS:
			kn_strv_push(&tmpfs, optarg);
			break;
		case 'w':
			o.workdir = optarg;
			break;
		case 'u':
			o.user = optarg;
			break;
		case OPT_ENTRYPOINT:
			o.entrypoint = optarg;
			break;
		case OPT_NETWORK:
			if (!strcmp(optarg, "host")) {
				o.network = RUN_NETWORK_HOST;
			} else if (!strcmp(optarg, "none")) {
				o.network = RUN_NETWORK_NONE;
			} else {
				cli_usage_error("run",
						"network '%s' is not supported: use 'host' (the "
						"default) or 'none'",
						optarg);
				goto out;
			}
			break;
		case 'h':
			o.hostname = optarg;
			break;
		case OPT_READ_ONLY:
			o.read_only = true;
			break;
		case OPT_INIT:
			o.init = true;
			break;
		case 'i':
			o.interactive = true;
			break;
		case 't':
			o.tty = true;
			break;
		case 'p':
			kn_strv_push(&publish, optarg);
			break;
		case OPT_STOP_TIMEOUT: {
			char *end;
			long n;

			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || n < -1 || n > 86400 * 365) {
				cli_usage_error(
				    "run", "invalid --stop-timeout '%s': seconds, or -1", optarg);
				goto out;
			}
			o.stop_timeout = (int)n;
			break;
		}
		case OPT_STOP_SIGNAL:
			o.stop_signal = optarg;
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			goto out;
		}
	}
	if (optind >= argc) {
		cli_usage_error("run", "expected an IMAGE");
		goto out;
	}
	if (publish.n) {
		if (o.network == RUN_NETWORK_NONE) {
			cli_usage_error("run",
					"-p '%s' cannot work with --network none: the container "
					"has no network but its own loopback",
					publish.v[0]);
			goto out;
		}
		/* docker run --network host -p: the same warning, and the run goes on. */
		cli_warn("published ports are discarded (-p %s): the container uses the host's "
			 "network, so a port it listens on is already a port of this host",
			 publish.v[0]);
	}
	for (size_t i = 0; i < env_files.n; i++) {
		struct kn_strv raw = KN_STRV_INIT;

		if (run_env_file_read(env_files.v[i], &raw, &err) < 0) {
			kn_strv_release(&raw);
			cli_fail(err);
			status = 125;
			goto out;
		}
		for (size_t j = 0; j < raw.n; j++)
			push_env(&env, raw.v[j]);
		kn_strv_release(&raw);
	}
	for (size_t i = 0; i < cli_env.n; i++)
		push_env(&env, cli_env.v[i]);
	if (o.tty && o.interactive && !isatty(STDIN_FILENO)) {
		cli_usage_error("run", "the input device is not a TTY (-t with -i needs a terminal "
				       "on stdin; drop -t)");
		goto out;
	}

	o.root = cli_root();
	o.image = argv[optind];
	o.args = argv + optind + 1;
	o.env = env.v;
	o.volumes = volumes.v;
	o.tmpfs = tmpfs.v;
	fflush(stdout);
	if (run_container(&o, &status, &err) < 0) {
		int s = status;

		cli_fail(err);
		status = s;
	}
out:
	kn_strv_release(&env);
	kn_strv_release(&env_files);
	kn_strv_release(&cli_env);
	kn_strv_release(&volumes);
	kn_strv_release(&tmpfs);
	kn_strv_release(&publish);
	return status;
}
