file(REMOVE_RECURSE
  "CMakeFiles/test_sleep.dir/tests/test_sleep.c.o"
  "CMakeFiles/test_sleep.dir/tests/test_sleep.c.o.d"
  "test_sleep"
  "test_sleep.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_sleep.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
