# Empty compiler generated dependencies file for redact_bench.
# This may be replaced when dependencies are built.
