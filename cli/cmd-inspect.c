/* kiln inspect: show images as JSON, close to `docker image inspect`. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "layers/layers.h"

static json_t *inspect_one(struct store *s, const struct store_image *img, kn_error **err)
{
	json_t *o = json_object(), *tags = json_array(), *digests = json_array(), *cfg, *rootfs;
	json_t *raw = json_loadb(img->config_json, img->config_len, 0, NULL);
	struct store_ref *refs = NULL;
	size_t n = 0;

	if (store_ref_list(s, &refs, &n, err) < 0) {
		json_decref(o);
		json_decref(tags);
		json_decref(digests);
		json_decref(raw);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_image *other = NULL;
		_cleanup_free_ char *fam = NULL, *repo = NULL, *tag = NULL;

		if (!refs[i].name || store_image_resolve(s, refs[i].name, &other, NULL) < 0)
			continue;
		if (!strcmp(other->id, img->id)) {
			fam = store_ref_familiar(refs[i].name);
			store_ref_split(fam, &repo, &tag);
			if (tag)
				json_array_append_new(tags, json_string(fam));
			json_array_append_new(digests, json_sprintf("%s@%s", repo, refs[i].desc.digest));
		}
		store_image_free(other);
	}
	store_refs_free(refs, n);
	json_object_set_new(o, "Id", json_string(img->id));
	json_object_set_new(o, "RepoTags", tags);
	json_object_set_new(o, "RepoDigests", digests);
	json_object_set_new(o, "Parent", json_string(""));
	json_object_set_new(o, "Comment", json_string(""));
	json_object_set_new(o, "Created", json_string(img->config->created ? img->config->created : ""));
	json_object_set_new(o, "Author", json_string(img->config->author ? img->config->author : ""));
	json_object_set_new(o, "Architecture", json_string(img->config->architecture ? img->config->architecture : ""));
	if (img->config->variant)
		json_object_set_new(o, "Variant", json_string(img->config->variant));
	json_object_set_new(o, "Os", json_string(img->config->os ? img->config->os : ""));
	cfg = json_object_get(raw, "config");
	json_object_set(o, "Config", json_is_object(cfg) ? cfg : json_object());
	if (!json_is_object(cfg))
		json_decref(json_object_get(o, "Config"));
	rootfs = json_object();
	json_object_set_new(rootfs, "Type", json_string(img->config->rootfs_type ? img->config->rootfs_type : "layers"));
	json_object_set_new(rootfs, "Layers", json_array());
	for (size_t i = 0; img->config->diff_ids[i]; i++)
		json_array_append_new(json_object_get(rootfs, "Layers"), json_string(img->config->diff_ids[i]));
	json_object_set_new(o, "RootFS", rootfs);
	json_object_set_new(o, "Size", json_integer(store_image_size(img)));
	json_object_set(o, "History", json_is_array(json_object_get(raw, "history"))
					      ? json_object_get(raw, "history") : json_array());
	json_object_set_new(o, "Descriptor", store_desc_to_json(&img->manifest_desc));
	json_decref(raw);
	return o;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		CLI_OPT_ROOT_ENTRY,
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(cli_template_freep) struct cli_template *tpl = NULL;
	kn_error *err = NULL;
	bool quiet = false;
	json_t *out;
	char *text;
	int c, rc = CLI_EXIT_OK;

	while ((c = cli_getopt("inspect", argc, argv, ":hqf:", opts)) != -1) {
		switch (c) {
		case 'h':
			fputs("Usage: kiln inspect [OPTIONS] IMAGE...\n"
			      "\n"
			      "Show images as a JSON array (like docker image inspect).\n"
			      "\n"
			      "Options:\n"
			      "  -f, --format FMT  a Go template applied to each image, e.g. '{{.Id}}',\n"
			      "                   '{{json .Config}}', '{{.Config.Env}}'\n"
			      "  -q, --quiet      print only each image's ID\n"
			      "      --root DIR   local image store\n"
			      "  -h, --help       show this help\n",
			      stdout);
			return CLI_EXIT_OK;
		case 'f':
			cli_template_free(steal_ptr(&tpl));
			if (cli_template_parse(optarg, &tpl, &err) < 0) {
				_cleanup_free_ char *m = kn_error_format(err);

				kn_error_free(err);
				return cli_usage_error("inspect", "invalid --format: %s", m);
			}
			break;
		case 'q':
			quiet = true;
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error("inspect", "expected at least one IMAGE");
	if (cli_store_open_read(&s, &err) < 0)
		return cli_fail(err);
	out = json_array();
	for (int i = optind; i < argc; i++) {
		struct store_image *img = NULL;
		json_t *o;

		if (store_image_resolve(s, argv[i], &img, &err) < 0) {
			cli_fail(err);
			err = NULL;
			rc = CLI_EXIT_FAIL;
			continue;
		}
		o = inspect_one(s, img, &err);
		store_image_free(img);
		if (!o) {
			cli_fail(err);
			err = NULL;
			rc = CLI_EXIT_FAIL;
			continue;
		}
		if (quiet) {
			puts(json_string_value(json_object_get(o, "Id")));
			json_decref(o);
		} else if (tpl) {
			struct kn_buf b = KN_BUF_INIT;

			if (cli_template_exec(tpl, o, &b, &err) < 0) {
				cli_fail(err);
				err = NULL;
				rc = CLI_EXIT_FAIL;
			} else {
				puts(b.buf);
			}
			kn_buf_release(&b);
			json_decref(o);
		} else {
			json_array_append_new(out, o);
		}
	}
	if (!quiet && !tpl) {
		text = json_dumps(out, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
		puts(text);
		free(text);
	}
	json_decref(out);
	return rc;
}
