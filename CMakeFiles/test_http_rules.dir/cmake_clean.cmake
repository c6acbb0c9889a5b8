file(REMOVE_RECURSE
  "CMakeFiles/test_http_rules.dir/tests/test_http_rules.c.o"
  "CMakeFiles/test_http_rules.dir/tests/test_http_rules.c.o.d"
  "test_http_rules"
  "test_http_rules.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_http_rules.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
