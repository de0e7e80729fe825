# The planner with its expansion limits: plan, expand every stage as the builder does, format
# (parser/plan.c, parser/shell.c). Seeds are expansion bombs; fuzz-plan.options holds its limits.
kiln_fuzz_target(fuzz-plan ${CMAKE_CURRENT_SOURCE_DIR}/fuzz-plan.c kiln_parser)
