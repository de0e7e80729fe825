/* Unit tests of registry/manifest.c: media types, schema 1 refusal, platform selection. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "registry/transfer-internal.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static struct reg_manifest *parse_ok(const char *json, const char *ct)
{
	struct reg_manifest *m = NULL;
	kn_error *err = NULL;

	if (reg_manifest_parse(json, strlen(json), ct, &m, &err) < 0)
		fail_msg("parse failed: %s", err->msg);
	return m;
}

static kn_error *parse_err(const char *json, const char *ct)
{
	struct reg_manifest *m = NULL;
	kn_error *err = NULL;

	assert_int_equal(reg_manifest_parse(json, strlen(json), ct, &m, &err), -1);
	assert_null(m);
	assert_non_null(err);
	return err;
}

static void test_oci_manifest(void **state)
{
	(void)state;
	struct reg_manifest *m = parse_ok(
		"{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_OCI_MANIFEST "\","
		"\"config\":{\"mediaType\":\"" REG_MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":7},"
		"\"layers\":[{\"mediaType\":\"" REG_MT_OCI_LAYER_GZIP "\",\"digest\":\"" D2
		"\",\"size\":10},{\"mediaType\":\"" REG_MT_OCI_LAYER_GZIP "\",\"digest\":\"" D3
		"\",\"size\":11}]}",
		NULL);

	assert_int_equal(m->kind, REG_MANIFEST_IMAGE);
	assert_string_equal(m->media_type, REG_MT_OCI_MANIFEST);
	assert_string_equal(m->config.digest, D1);
	assert_int_equal(m->config.size, 7);
	assert_int_equal(m->n_layers, 2);
	assert_string_equal(m->layers[1].digest, D3);
	assert_int_equal(m->layers[1].size, 11);
	reg_manifest_free(m);
}

static void test_docker_manifest_by_content_type(void **state)
{
	(void)state;
	/* No mediaType field: the Content-Type decides. */
	struct reg_manifest *m = parse_ok(
		"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" REG_MT_DOCKER_CONFIG
		"\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}",
		REG_MT_DOCKER_MANIFEST "; charset=utf-8");

	assert_int_equal(m->kind, REG_MANIFEST_IMAGE);
	assert_string_equal(m->media_type, REG_MT_DOCKER_MANIFEST);
	assert_int_equal(m->n_layers, 0);
	reg_manifest_free(m);
}

static const char index_json[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_DOCKER_LIST "\",\"manifests\":["
	"{\"mediaType\":\"" REG_MT_DOCKER_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,"
	"\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
	"{\"mediaType\":\"" REG_MT_DOCKER_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":2,"
	"\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
	"{\"mediaType\":\"" REG_MT_DOCKER_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":3,"
	"\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}},"
	"{\"mediaType\":\"" REG_MT_OCI_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":3,"
	"\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}]}";

static const char *select_digest(const struct reg_manifest *m, const char *plat)
{
	struct reg_platform p;
	const struct reg_desc *d;
	kn_error *err = NULL;

	assert_int_equal(reg_platform_parse(plat, &p, &err), 0);
	d = reg_index_select(m, &p, &err);
	reg_platform_release(&p);
	if (!d) {
		kn_error_free(err);
		return NULL;
	}
	return d->digest;
}

static void test_index_select(void **state)
{
	(void)state;
	struct reg_manifest *m = parse_ok(index_json, NULL);
	struct reg_platform p;
	kn_error *err = NULL;

	assert_int_equal(m->kind, REG_MANIFEST_INDEX);
	assert_int_equal(m->n_entries, 4);
	assert_string_equal(select_digest(m, "linux/amd64"), D1);
	assert_string_equal(select_digest(m, "linux/x86_64"), D1);
	assert_string_equal(select_digest(m, "linux/arm64"), D3);
	assert_string_equal(select_digest(m, "linux/arm64/v8"), D3); /* v8 is arm64's default */
	assert_string_equal(select_digest(m, "linux/arm/v6"), D2);
	assert_null(select_digest(m, "linux/arm/v7")); /* v6 does not satisfy v7 */
	assert_null(select_digest(m, "linux/s390x"));

	assert_int_equal(reg_platform_parse("linux/s390x", &p, &err), 0);
	assert_null(reg_index_select(m, &p, &err));
	assert_int_equal(err->code, ENOENT);
	assert_non_null(strstr(err->msg, "linux/s390x"));
	assert_non_null(strstr(err->msg, "linux/amd64, linux/arm/v6, linux/arm64"));
	assert_null(strstr(err->msg, "unknown"));
	kn_error_free(err);
	reg_platform_release(&p);
	reg_manifest_free(m);
}

static void test_schema1_refused(void **state)
{
	(void)state;
	kn_error *e = parse_err("{\"schemaVersion\":1,\"name\":\"x\",\"tag\":\"latest\","
				"\"fsLayers\":[],\"history\":[]}",
				REG_MT_DOCKER_SCHEMA1_SIGNED);

	assert_int_equal(e->code, EPROTONOSUPPORT);
	assert_non_null(strstr(e->msg, "schema 1"));
	kn_error_free(e);
	e = parse_err("{\"schemaVersion\":1,\"fsLayers\":[]}", "application/json");
	assert_int_equal(e->code, EPROTONOSUPPORT);
	kn_error_free(e);
}

static void test_malformed(void **state)
{
	(void)state;
	kn_error *e;

	e = parse_err("not json", NULL);
	assert_int_equal(e->code, EBADMSG);
	kn_error_free(e);
	/* A descriptor digest that could become a path. */
	e = parse_err("{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_OCI_MANIFEST "\","
		      "\"config\":{\"digest\":\"sha256:../../etc/passwd\",\"size\":1},\"layers\":[]}",
		      NULL);
	assert_int_equal(e->code, EBADMSG);
	assert_non_null(strstr(e->msg, "invalid digest"));
	kn_error_free(e);
	e = parse_err("{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_OCI_MANIFEST "\","
		      "\"config\":{\"digest\":\"" D1 "\",\"size\":-1},\"layers\":[]}",
		      NULL);
	assert_int_equal(e->code, EBADMSG);
	kn_error_free(e);
	e = parse_err("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.foo\",\"layers\":[]}",
		      NULL);
	assert_int_equal(e->code, EPROTONOSUPPORT);
	kn_error_free(e);
}

static void test_platform_parse(void **state)
{
	(void)state;
	struct reg_platform p;
	kn_error *err = NULL;
	char *s;

	/* Normalized as containerd does: arm64's default variant v8 is dropped. */
	assert_int_equal(reg_platform_parse("linux/aarch64/v8", &p, &err), 0);
	s = reg_platform_format(&p);
	assert_string_equal(s, "linux/arm64");
	free(s);
	reg_platform_release(&p);
	assert_int_equal(reg_platform_parse("linux/armhf", &p, &err), 0);
	s = reg_platform_format(&p);
	assert_string_equal(s, "linux/arm/v7");
	free(s);
	reg_platform_release(&p);
	assert_int_equal(reg_platform_parse("linux", &p, &err), -1);
	assert_int_equal(err->code, EINVAL);
	assert_non_null(strstr(err->msg, "'linux'"));
	kn_error_free(err);
	err = NULL;
	assert_int_equal(reg_platform_parse("linux//v7", &p, &err), -1);
	kn_error_free(err);
	reg_platform_host(&p);
	assert_string_equal(p.os, "linux");
	assert_non_null(p.arch);
	reg_platform_release(&p);
}

static void test_digest(void **state)
{
	(void)state;
	char *d = reg_digest_of("", 0);

	assert_string_equal(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_true(reg_digest_valid(d));
	free(d);
	assert_false(reg_digest_valid("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
	assert_false(reg_digest_valid("sha512:00"));
	assert_false(reg_digest_valid(D1 "0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oci_manifest),
		cmocka_unit_test(test_docker_manifest_by_content_type),
		cmocka_unit_test(test_index_select),
		cmocka_unit_test(test_schema1_refused),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_platform_parse),
		cmocka_unit_test(test_digest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
