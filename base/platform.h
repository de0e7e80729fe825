/* kiln base: platform names (os/arch/variant) as the OCI image spec and containerd write them. */
#ifndef KILN_BASE_PLATFORM_H
#define KILN_BASE_PLATFORM_H

/**
 * Normalizes an architecture and its variant the way containerd does, so that every module
 * compares and prints platforms alike: x86_64/x86-64 -> amd64 (variant v1 dropped),
 * aarch64 -> arm64 (variant 8/v8 dropped), armhf -> arm/v7, armel -> arm/v6, armvNl -> arm/vN,
 * arm without a variant -> arm/v7, i386..i686 -> 386. Other names are kept as written.
 * variant may be NULL. *ret_arch and *ret_variant are owned by the caller; *ret_variant is NULL
 * when the platform has no variant.
 */
void kn_arch_normalize(const char *arch, const char *variant, char **ret_arch, char **ret_variant);

/**
 * The running host's platform, normalized as above (from uname). The strings are static and
 * live for the whole process; *ret_variant is NULL when there is none. Any argument may be NULL.
 */
void kn_platform_host(const char **ret_os, const char **ret_arch, const char **ret_variant);

#endif
