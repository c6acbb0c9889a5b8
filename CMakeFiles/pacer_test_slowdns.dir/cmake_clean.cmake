file(REMOVE_RECURSE
  "CMakeFiles/pacer_test_slowdns.dir/tests/shims/slowdns.c.o"
  "CMakeFiles/pacer_test_slowdns.dir/tests/shims/slowdns.c.o.d"
  "shims/slowdns.pdb"
  "shims/slowdns.so"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/pacer_test_slowdns.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
