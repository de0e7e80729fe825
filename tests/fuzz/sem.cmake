# Parser semantics: word expansion and .dockerignore matching on arbitrary bytes (parser/shell.c,
# parser/dockerignore.c).
kiln_fuzz_target(fuzz-sem ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-sem.c kiln_parser)
