# Registry references, auth challenges and base64: kiln_registry's parsers on arbitrary bytes.
kiln_fuzz_target(fuzz-registry-ref ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-registry-ref.c kiln_registry)
