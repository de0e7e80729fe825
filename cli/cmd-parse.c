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
    "      --plan                print the stage graph with every variable expanded\n"
    "      --target STAGE        plan for this stage (name or index; default: the last)\n"
    "      --build-arg K[=V]     set a build argument (repeatable; K alone takes $K)\n"
    "      --platform P          target platform os/arch[/variant] (default: native)\n"
    "  -h, --help                show this help\n";

/* Long-only options take values from 0x100 up. */
enum {
	OPT_PARSE_FIRST = 0x100,
	/* PARSE-OPTION-IDS: plan option ids go here */
	OPT_PARSE_PLAN,
	OPT_PARSE_TARGET,
	OPT_PARSE_BUILD_ARG,
	OPT_PARSE_PLATFORM,
};

static const struct option parse_options[] = {
    {"file", required_argument, NULL, 'f'},
    /* PARSE-OPTION-TABLE: plan options go here */
    {"plan", no_argument, NULL, OPT_PARSE_PLAN},
    {"target", required_argument, NULL, OPT_PARSE_TARGET},
    {"build-arg", required_argument, NULL, OPT_PARSE_BUILD_ARG},
    {"platform", required_argument, NULL, OPT_PARSE_PLATFORM},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What `kiln parse` was asked to do, filled from the command line. */
struct parse_args {
	const char *file;
	/* PARSE-ARGS: plan fields go here */
	bool plan;
	const char *target;
	const char *platform;
	struct kn_strv build_args;
};

static void parse_args_release(struct parse_args *a)
{
	kn_strv_release(&a->build_args);
}

/* The stage graph (--plan): every variable expanded, unused build args as a warning. */
static int print_plan(const struct df_ast *ast, const char *name, const struct parse_args *args)
{
	struct df_plan_opts opts = {name, args->target, args->build_args.v, args->platform};
	_cleanup_(df_plan_freep) struct df_plan *plan = NULL;
	_cleanup_(kn_buf_release) struct kn_buf out = KN_BUF_INIT;
	kn_error *err = NULL;

	if (df_plan_build(ast->root, ast->escape, &opts, &plan, &err) < 0 ||
	    df_plan_format(plan, &out, &err) < 0)
		return cli_fail(err);
	if (plan->unused_build_args.n) {
		_cleanup_(kn_buf_release) struct kn_buf w = KN_BUF_INIT;

		for (size_t i = 0; i < plan->unused_build_args.n; i++)
			kn_buf_addf(&w, "%s%s", i ? " " : "", plan->unused_build_args.v[i]);
		cli_warn("one or more build-args [%s] were not consumed", w.buf);
	}
	if (fwrite(out.buf, 1, out.len, stdout) != out.len || fflush(stdout) == EOF) {
		kn_error_errno(&err, "cannot write the plan");
		return cli_fail(err);
	}
	return CLI_EXIT_OK;
}

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
	_cleanup_(parse_args_release) struct parse_args args = {.file = "Dockerfile"};
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
		case OPT_PARSE_PLAN:
			args.plan = true;
			break;
		case OPT_PARSE_TARGET:
			args.target = optarg;
			break;
		case OPT_PARSE_PLATFORM:
			args.platform = optarg;
			break;
		case OPT_PARSE_BUILD_ARG:
			if (strchr(optarg, '=')) {
				kn_strv_push(&args.build_args, optarg);
			} else if (getenv(optarg)) {
				kn_strv_pushf(&args.build_args, "%s=%s", optarg, getenv(optarg));
			}
			break;
		case 'h':
			fputs(parse_usage, stdout);
			return CLI_EXIT_OK;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error("parse", "unexpected argument '%s'", argv[optind]);
	if (!args.plan && (args.target || args.platform || args.build_args.n))
		return cli_usage_error("parse", "--target, --build-arg and --platform need --plan");

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
	if (args.plan)
		return print_plan(ast, name, &args);
	return print_ast(ast);
}
