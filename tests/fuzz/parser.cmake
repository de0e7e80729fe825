# The Dockerfile parser: parse, dump and free arbitrary bytes (parser/ast*.c).
kiln_fuzz_target(fuzz-parser ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-parser.c kiln_parser)
