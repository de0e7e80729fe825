/* kiln save: write images to a docker-archive or oci-archive tarball. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "layers/layers.h"

int cmd_save(int argc, char **argv)
{
	enum { OPT_FORMAT = 0x100 };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		CLI_OPT_ROOT_ENTRY,
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_free_ char *tmp = NULL;
	enum store_archive_format fmt = STORE_ARCHIVE_DOCKER;
	const char *output = NULL;
	kn_error *err = NULL;
	int c, fd = STDOUT_FILENO;

	while ((c = cli_getopt("save", argc, argv, ":ho:", opts)) != -1) {
		switch (c) {
		case 'h':
			fputs("Usage: kiln save [OPTIONS] IMAGE...\n"
			      "\n"
			      "Write images to a tar archive (to stdout when it is not a terminal).\n"
			      "\n"
			      "Options:\n"
			      "  -o, --output FILE   write to FILE ('-' for stdout)\n"
			      "      --format FMT    'docker-archive' (default) or 'oci-archive'\n"
			      "      --root DIR      local image store\n"
			      "  -h, --help          show this help\n",
			      stdout);
			return CLI_EXIT_OK;
		case 'o':
			output = optarg;
			break;
		case OPT_FORMAT:
			if (!strcmp(optarg, "docker-archive") || !strcmp(optarg, "docker"))
				fmt = STORE_ARCHIVE_DOCKER;
			else if (!strcmp(optarg, "oci-archive") || !strcmp(optarg, "oci"))
				fmt = STORE_ARCHIVE_OCI;
			else
				return cli_usage_error("save", "unknown format '%s' (use 'docker-archive' or 'oci-archive')",
						       optarg);
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error("save", "expected at least one IMAGE");
	if (output && !strcmp(output, "-"))
		output = NULL;
	if (!output && isatty(STDOUT_FILENO))
		return cli_usage_error("save", "refusing to write an archive to a terminal; use -o FILE");
	if (cli_store_open_read(&s, &err) < 0)
		return cli_fail(err);
	if (output) {
		/* Write beside the target and rename, so a failed save leaves no partial FILE. */
		tmp = xasprintf("%s.kiln-tmp-%d", output, (int)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return cli_fail((kn_error_errno(&err, "create '%s'", output), err));
	}
	if (store_archive_save(s, argv + optind, fmt, fd, &err) < 0) {
		if (output) {
			close(fd);
			unlink(tmp);
		}
		return cli_fail(err);
	}
	if (output) {
		if (fsync(fd) < 0 || close(fd) < 0) {
			kn_error_errno(&err, "write '%s'", output);
			unlink(tmp);
			return cli_fail(err);
		}
		if (rename(tmp, output) < 0) {
			kn_error_errno(&err, "rename '%s' to '%s'", tmp, output);
			unlink(tmp);
			return cli_fail(err);
		}
	}
	return CLI_EXIT_OK;
}
