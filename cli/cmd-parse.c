/* kiln parse: parses a Dockerfile and prints its AST (arguments and printing only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "parser/parser.h"

/* Option lines for the plan (--plan, --target, --build-arg) go after -f. */
static const char parse_usage[] =
	"Usage: kiln parse [OPTIONS]\n"
	"\n"
	"Parses a Dockerfile the way BuildKit reads it and prints its syntax tree, one\n"
	"S-expression per instruction (BuildKit's parser dump format).\n"
	"\n"
	"Options:\n"
	"  -f, --file FILE           the Dockerfile ('-' for stdin; default ./Dockerfile)\n"
	/* PARSE-USAGE-PLAN: plan options are listed here */
	"  -h, --help                show this help\n";

/* Long-only options take values from 0x100 up. */
enum {
	OPT_PARSE_FIRST = 0x100,
	/* PARSE-OPTION-IDS: plan option ids go here */
};

static const struct option parse_options[] = {
	{ "file", required_argument, NULL, 'f' },
	/* PARSE-OPTION-TABLE: plan options go here */
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* What `kiln parse` was asked to do, filled from the command line. */
struct parse_args {
	const char *file;
	/* PARSE-ARGS: plan fields go here */
};

static int print_ast(const struct df_ast *ast)
{
	_cleanup_free_ char *dump = df_ast_dump(ast);

	if (fputs(dump, stdout) == EOF || fflush(stdout) == EOF) {
		kn_error *err = NULL;

		kn_error_errno(&err, "cannot write the syntax tree");
		return cli_fail(err);
	}
	return CLI_EXIT_OK;
}

int cmd_parse(int argc, char **argv)
{
	struct parse_args args = { .file = "Dockerfile" };
	_cleanup_(kn_buf_release) struct kn_buf text = KN_BUF_INIT;
	_cleanup_(df_ast_freep) struct df_ast *ast = NULL;
	kn_error *err = NULL;
	const char *name;
	int c;

	while ((c = cli_getopt("parse", argc, argv, ":f:h", parse_options)) != -1) {
		switch (c) {
		case 'f':
			args.file = optarg;
			break;
		/* PARSE-OPTION-CASES: plan options are handled here */
		case 'h':
			fputs(parse_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error("parse", "unexpected argument '%s'", argv[optind]);

	if (!strcmp(args.file, "-")) {
		name = "<stdin>";
		if (kn_read_fd(STDIN_FILENO, DF_MAX_INPUT, &text, &err) < 0)
			return cli_fail(err);
	} else {
		name = args.file;
		if (kn_read_file(args.file, DF_MAX_INPUT, &text, &err) < 0)
			return cli_fail(err);
	}

	ast = df_parse(text.buf, text.len, name, &err);
	if (!ast)
		return cli_fail(err);
	for (size_t i = 0; i < ast->n_warnings; i++)
		cli_warn("%s:%d: %s", name, ast->warnings[i].line, ast->warnings[i].msg);

	/* PARSE-BRANCH: the plan (--plan) takes over here; without it the AST is printed. */
	return print_ast(ast);
}
