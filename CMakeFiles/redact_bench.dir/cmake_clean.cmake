file(REMOVE_RECURSE
  "CMakeFiles/redact_bench.dir/bench/redact_bench.c.o"
  "CMakeFiles/redact_bench.dir/bench/redact_bench.c.o.d"
  "redact_bench"
  "redact_bench.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/redact_bench.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
