file(REMOVE_RECURSE
  "CMakeFiles/test_coro.dir/tests/test_coro.c.o"
  "CMakeFiles/test_coro.dir/tests/test_coro.c.o.d"
  "test_coro"
  "test_coro.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_coro.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
