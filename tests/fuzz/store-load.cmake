# The store: arbitrary bytes loaded as an archive (fsck must stay clean) and parsed as image
# config / manifest / index JSON (canonical dump is a fixed point) and image names.
kiln_fuzz_target(fuzz-store-load ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-store-load.c kiln_layers)
