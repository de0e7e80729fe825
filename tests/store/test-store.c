/* Unit tests of the store API: digests, names, canonical configs, blob ingest, refs, gc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "layers/layers.h"

static char *tmpdir_new(void)
{
	char *d = xstrdup("/tmp/kiln-store-unit-XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

static void test_digest(void **state)
{
	_cleanup_free_ char *d = store_digest_buf("", 0);
	_cleanup_free_ char *c = NULL;
	kn_error *err = NULL;

	(void)state;
	assert_string_equal(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(store_digest_check(d, NULL), 0);
	assert_int_equal(store_digest_check("sha256:../../etc/passwd", &err), -1);
	assert_non_null(strstr(err->msg, "invalid digest"));
	kn_error_free(err);
	assert_int_equal(store_digest_check("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", NULL), -1);
	assert_int_equal(store_digest_check("md5:d41d8cd98f00b204e9800998ecf8427e", NULL), -1);
	assert_int_equal(store_digest_check("sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e", NULL), 0);
	c = store_chain_id("sha256:aa", "sha256:bb");
	assert_string_equal(c, "sha256:b68ad689d6d1ec110ea1c13617437ad6f3766d4b3b309f6a603a222e07a0164f");
}

static void norm_is(const char *in, const char *want)
{
	_cleanup_free_ char *out = NULL;
	kn_error *err = NULL;

	if (store_ref_normalize(in, &out, &err) < 0) {
		print_error("normalize '%s': %s\n", in, err->msg);
		kn_error_free(err);
		fail();
	}
	assert_string_equal(out, want);
}

static void test_normalize(void **state)
{
	_cleanup_free_ char *fam = NULL, *repo = NULL, *tag = NULL;
	char *out = NULL;

	(void)state;
	norm_is("alpine", "docker.io/library/alpine:latest");
	norm_is("alpine:3.20", "docker.io/library/alpine:3.20");
	norm_is("user/app", "docker.io/user/app:latest");
	norm_is("docker.io/alpine", "docker.io/library/alpine:latest");
	norm_is("index.docker.io/library/alpine:1", "docker.io/library/alpine:1");
	norm_is("localhost:5000/x", "localhost:5000/x:latest");
	norm_is("localhost/team/app:1", "localhost/team/app:1");
	norm_is("reg.example/a/b/c:v1.0-rc_1", "reg.example/a/b/c:v1.0-rc_1");
	norm_is("alpine@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"docker.io/library/alpine@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	norm_is("alpine:3@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"docker.io/library/alpine:3@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(store_ref_normalize("Alpine", &out, NULL), -1);
	assert_int_equal(store_ref_normalize("alpine:", &out, NULL), -1);
	assert_int_equal(store_ref_normalize("alpine:-x", &out, NULL), -1);
	assert_int_equal(store_ref_normalize("a//b", &out, NULL), -1);
	assert_int_equal(store_ref_normalize("alpine@sha256:xyz", &out, NULL), -1);
	assert_int_equal(store_ref_normalize("", &out, NULL), -1);
	assert_null(out);
	fam = store_ref_familiar("docker.io/library/alpine:3");
	assert_string_equal(fam, "alpine:3");
	store_ref_split("localhost:5000/x:1", &repo, &tag);
	assert_string_equal(repo, "localhost:5000/x");
	assert_string_equal(tag, "1");
}

static void test_config_canonical(void **state)
{
	static const char in[] =
		"{\"os\":\"linux\",\"architecture\":\"amd64\",\"x-unknown\":{\"b\":1,\"a\":2},"
		"\"config\":{\"Env\":[\"A=1\"],\"Cmd\":null,\"Entrypoint\":[],\"Labels\":{\"z\":\"1\",\"a\":\"2\"},"
		"\"ExposedPorts\":{\"80/tcp\":{}},\"Healthcheck\":{\"Test\":[\"CMD\",\"true\"],\"Interval\":1000000000,\"Retries\":3},"
		"\"Custom\":true},"
		"\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"]},"
		"\"history\":[{\"created_by\":\"x\",\"empty_layer\":true}]}";
	_cleanup_(image_config_freep) struct image_config *c = NULL, *c2 = NULL;
	_cleanup_free_ char *a = NULL, *b = NULL;
	size_t la, lb;

	(void)state;
	assert_int_equal(image_config_parse(in, sizeof(in) - 1, &c, NULL), 0);
	assert_null(c->cmd);
	assert_non_null(c->entrypoint);
	assert_null(c->entrypoint[0]);
	assert_string_equal(c->labels[0], "a=2");
	assert_int_equal(c->healthcheck.retries, 3);
	a = image_config_dump(c, &la);
	assert_string_equal(a,
		"{\"architecture\":\"amd64\",\"config\":{\"Custom\":true,\"Entrypoint\":[],\"Env\":[\"A=1\"],"
		"\"ExposedPorts\":{\"80/tcp\":{}},\"Healthcheck\":{\"Interval\":1000000000,\"Retries\":3,"
		"\"Test\":[\"CMD\",\"true\"]},\"Labels\":{\"a\":\"2\",\"z\":\"1\"}},"
		"\"history\":[{\"created_by\":\"x\",\"empty_layer\":true}],\"os\":\"linux\","
		"\"rootfs\":{\"diff_ids\":[\"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"],"
		"\"type\":\"layers\"},\"x-unknown\":{\"a\":2,\"b\":1}}");
	assert_int_equal(image_config_parse(a, la, &c2, NULL), 0);
	b = image_config_dump(c2, &lb);
	assert_string_equal(a, b);
	image_config_set_env(c2, "A", "2");
	image_config_set_env(c2, "B", "3");
	assert_string_equal(c2->env[0], "A=2");
	assert_string_equal(c2->env[1], "B=3");
}

static void test_blobs_refs_gc(void **state)
{
	_cleanup_free_ char *root = tmpdir_new();
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(image_config_freep) struct image_config *cfg = image_config_new();
	_cleanup_(store_image_freep) struct store_image *img = NULL;
	_cleanup_free_ char *d = NULL, *junk = NULL, *id = NULL, *cache = NULL;
	struct store_blob_writer *w = NULL;
	struct store_desc layer = { 0 }, man = { 0 };
	struct store_ref *refs = NULL;
	size_t n = 0;
	int64_t size = 0, freed = 0;
	kn_error *err = NULL;
	char created_by[] = "test";
	struct image_history h = { .created_by = created_by };

	(void)state;
	assert_int_equal(store_open(root, STORE_WRITE, &s, NULL), 0);
	/* A wrong expected digest stores nothing. */
	assert_int_equal(store_blob_writer_new(s, &w, NULL), 0);
	assert_int_equal(store_blob_writer_write(w, "hello", 5, NULL), 0);
	assert_int_equal(store_blob_writer_commit(w, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
						  NULL, NULL, &err), -1);
	assert_int_equal(err->code, EBADMSG);
	kn_error_free(err);
	err = NULL;
	assert_false(store_blob_exists(s, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
	assert_int_equal(store_blob_writer_new(s, &w, NULL), 0);
	assert_int_equal(store_blob_writer_write(w, "hello", 5, NULL), 0);
	assert_int_equal(store_blob_writer_commit(w, NULL, &d, &size, NULL), 0);
	assert_string_equal(d, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
	assert_int_equal(size, 5);
	assert_true(store_blob_exists(s, d));
	assert_int_equal(store_blob_put(s, "junk", 4, &junk, NULL), 0);

	/* An image on the "hello" blob as its (fake) layer. */
	layer.media_type = xstrdup(STORE_MT_OCI_LAYER);
	layer.digest = xstrdup(d);
	layer.size = 5;
	image_config_add_layer(cfg, d);
	image_config_add_history(cfg, &h);
	assert_int_equal(store_image_write(s, cfg, &layer, 1, IMAGE_FORMAT_DOCKER, "app", &man, &id, NULL), 0);
	assert_string_equal(man.media_type, STORE_MT_DOCKER_MANIFEST);
	assert_int_equal(store_ref_list(s, &refs, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(refs[0].name, "docker.io/library/app:latest");
	store_refs_free(refs, n);
	assert_int_equal(store_image_resolve(s, "app", &img, NULL), 0);
	assert_string_equal(img->id, id);
	assert_string_equal(img->manifest.layers[0].media_type, STORE_MT_DOCKER_LAYER);
	store_image_free(img);
	img = NULL;
	assert_int_equal(store_image_resolve(s, store_digest_hex(id), &img, NULL), 0);
	store_image_free(img);
	img = NULL;
	assert_int_equal(store_image_resolve(s, "nope", &img, &err), -1);
	assert_int_equal(err->code, ENOENT);
	kn_error_free(err);
	err = NULL;

	/* gc needs the exclusive lock; then removes only the junk blob. */
	assert_int_equal(store_gc(s, 0, &freed, &err), -1);
	kn_error_free(err);
	err = NULL;
	store_free(s);
	assert_int_equal(store_open(root, STORE_EXCLUSIVE, &s, NULL), 0);
	/* A cache entry keeps the junk blob alive until --cache. */
	cache = xasprintf("{\"blobs\":[\"%s\"]}", junk);
	assert_int_equal(store_cache_put(s, "abcdef", cache, NULL), 0);
	assert_int_equal(store_gc(s, 0, &freed, NULL), 0);
	assert_int_equal(freed, 0);
	assert_true(store_blob_exists(s, junk));
	assert_int_equal(store_gc(s, STORE_GC_CACHE, &freed, NULL), 0);
	assert_false(store_blob_exists(s, junk));
	assert_true(store_blob_exists(s, d));
	assert_int_equal(store_fsck(s, NULL, NULL, NULL), 0);

	/* Deleting the name makes everything collectable. */
	assert_int_equal(store_ref_delete(s, "docker.io/library/app:latest", NULL), 0);
	assert_int_equal(store_gc(s, 0, &freed, NULL), 0);
	assert_false(store_blob_exists(s, d));
	store_desc_release(&layer);
	store_desc_release(&man);
	(void)kn_rm_rf(root, NULL);
}

static void test_index(void **state)
{
	_cleanup_free_ char *root = tmpdir_new();
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(store_image_freep) struct store_image *img = NULL;
	_cleanup_free_ char *d = NULL, *id_host = NULL, *id_other = NULL;
	struct store_desc layer = { 0 }, m[2] = { { 0 } }, ix = { 0 };
	const char *arch, *os, *variant;
	int64_t freed = -1;

	(void)state;
	kn_platform_host(&os, &arch, &variant);
	assert_int_equal(store_open(root, STORE_EXCLUSIVE, &s, NULL), 0);
	assert_int_equal(store_blob_put(s, "layer", 5, &d, NULL), 0);
	layer.media_type = xstrdup(STORE_MT_OCI_LAYER);
	layer.digest = xstrdup(d);
	layer.size = 5;
	for (int i = 0; i < 2; i++) {
		_cleanup_(image_config_freep) struct image_config *c = image_config_new();

		if (i == 1) {
			free(c->architecture);
			c->architecture = xstrdup(strcmp(arch, "s390x") ? "s390x" : "ppc64le");
			free(c->variant);
			c->variant = NULL;
		}
		image_config_add_layer(c, d);
		assert_int_equal(store_image_write(s, c, &layer, 1, IMAGE_FORMAT_OCI, NULL, &m[i],
						   i ? &id_other : &id_host, NULL), 0);
		m[i].platform = xcalloc(1, sizeof(*m[i].platform));
		m[i].platform->os = xstrdup(c->os);
		m[i].platform->architecture = xstrdup(c->architecture);
	}
	/* Put the foreign platform first: resolve must still pick the host's. */
	{
		struct store_desc order[2] = { m[1], m[0] };

		assert_int_equal(store_index_write(s, order, 2, IMAGE_FORMAT_OCI, "multi:1", &ix, NULL), 0);
	}
	assert_string_equal(ix.media_type, STORE_MT_OCI_INDEX);
	assert_int_equal(store_image_resolve(s, "multi:1", &img, NULL), 0);
	assert_string_equal(img->id, id_host);
	assert_string_equal(img->top.digest, ix.digest);
	/* The untagged entries of both manifests went when the index named them. */
	{
		struct store_ref *refs = NULL;
		size_t n = 0;

		assert_int_equal(store_ref_list(s, &refs, &n, NULL), 0);
		assert_int_equal(n, 1);
		assert_string_equal(refs[0].name, "docker.io/library/multi:1");
		store_refs_free(refs, n);
	}
	assert_int_equal(store_gc(s, 0, &freed, NULL), 0);
	assert_int_equal(freed, 0);
	assert_true(store_blob_exists(s, id_other));
	assert_int_equal(store_fsck(s, NULL, NULL, NULL), 0);
	/* An oci-archive keeps the index with both platforms through save and load. */
	{
		_cleanup_free_ char *tar = xasprintf("%s/multi.tar", root);
		_cleanup_free_ char *root2 = xasprintf("%s/second", root);
		_cleanup_(store_freep) struct store *s2 = NULL;
		_cleanup_(store_image_freep) struct store_image *img2 = NULL;
		char *names[] = { (char *)"multi:1", NULL };
		int fd = open(tar, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		assert_true(fd >= 0);
		assert_int_equal(store_archive_save(s, names, STORE_ARCHIVE_OCI, fd, NULL), 0);
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		assert_int_equal(store_open(root2, STORE_WRITE, &s2, NULL), 0);
		assert_int_equal(store_archive_load(s2, fd, NULL, NULL, NULL), 0);
		close(fd);
		assert_int_equal(store_image_resolve(s2, "multi:1", &img2, NULL), 0);
		assert_string_equal(img2->top.digest, ix.digest);
		assert_string_equal(img2->id, id_host);
		assert_true(store_blob_exists(s2, id_other));
		assert_int_equal(store_fsck(s2, NULL, NULL, NULL), 0);
	}
	store_desc_release(&layer);
	store_desc_release(&m[0]);
	store_desc_release(&m[1]);
	store_desc_release(&ix);
	(void)kn_rm_rf(root, NULL);
}

/* Several threads ingest blobs on one handle at once: every temp file name is unique (no
 * O_EXCL clash), every blob lands with the right digest, no temp file is left behind. */
#define TB_THREADS 8
#define TB_BLOBS 12
#define TB_SIZE (48 * 1024)

struct tb_arg {
	struct store *s;
	int id;
	int failures;
	char *digest[TB_BLOBS + 1];
	char *want[TB_BLOBS + 1];
};

static void *tb_writer(void *p)
{
	struct tb_arg *a = p;
	_cleanup_free_ unsigned char *data = xmalloc(TB_SIZE);

	for (int i = 0; i <= TB_BLOBS; i++) {
		struct store_blob_writer *w = NULL;
		kn_error *err = NULL;

		/* Blob TB_BLOBS has the same content in every thread. */
		for (size_t k = 0; k < TB_SIZE; k++)
			data[k] = (unsigned char)(i == TB_BLOBS ? k * 7 : k * 31 + (size_t)a->id * 131 + (size_t)i);
		a->want[i] = store_digest_buf(data, TB_SIZE);
		if (store_blob_writer_new(a->s, &w, &err) < 0)
			goto fail;
		for (size_t off = 0; off < TB_SIZE; off += TB_SIZE / 4)
			if (store_blob_writer_write(w, data + off, TB_SIZE / 4, &err) < 0) {
				store_blob_writer_abort(w);
				goto fail;
			}
		if (store_blob_writer_commit(w, a->want[i], &a->digest[i], NULL, &err) < 0)
			goto fail;
		continue;
fail:
		a->failures++;
		kn_error_free(err);
	}
	return NULL;
}

static void test_blob_threads(void **state)
{
	_cleanup_free_ char *root = tmpdir_new();
	_cleanup_(store_freep) struct store *s = NULL;
	struct tb_arg args[TB_THREADS] = { 0 };
	pthread_t th[TB_THREADS];
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	const char *tmp;

	(void)state;
	assert_int_equal(store_open(root, STORE_WRITE, &s, NULL), 0);
	for (int t = 0; t < TB_THREADS; t++) {
		args[t].s = s;
		args[t].id = t;
		assert_int_equal(pthread_create(&th[t], NULL, tb_writer, &args[t]), 0);
	}
	for (int t = 0; t < TB_THREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	for (int t = 0; t < TB_THREADS; t++) {
		assert_int_equal(args[t].failures, 0);
		for (int i = 0; i <= TB_BLOBS; i++) {
			assert_string_equal(args[t].digest[i], args[t].want[i]);
			assert_int_equal(store_blob_verify(s, args[t].digest[i], NULL), 0);
			free(args[t].digest[i]);
			free(args[t].want[i]);
		}
	}
	tmp = store_tmpdir(s, NULL);
	assert_non_null(tmp);
	d = opendir(tmp);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			fail_msg("temp file '%s' left behind", de->d_name);
	store_free(steal_ptr(&s));
	(void)kn_rm_rf(root, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_config_canonical),
		cmocka_unit_test(test_blobs_refs_gc),
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_blob_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
