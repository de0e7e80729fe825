# Stored credentials: config.json lookups and credential helper output (registry/credentials.c).
kiln_fuzz_target(fuzz-registry-creds ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-registry-creds.c kiln_registry)
target_include_directories(fuzz-registry-creds PRIVATE ${PROJECT_SOURCE_DIR})
