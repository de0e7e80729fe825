# Registry manifests and platforms: kiln_registry's manifest parser and index selection on arbitrary bytes.
kiln_fuzz_target(fuzz-registry-manifest ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-registry-manifest.c kiln_registry)
