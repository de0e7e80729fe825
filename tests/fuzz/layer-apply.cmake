# Layer apply: arbitrary bytes as a layer stream (gzip/zstd/tar) unpacked into a temp dir, in
# both the flattened and the overlay (snapshot) form.
kiln_fuzz_target(fuzz-layer-apply ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-layer-apply.c kiln_layers)
