file(REMOVE_RECURSE
  "CMakeFiles/pacer_test_clockstep.dir/tests/shims/clockstep.c.o"
  "CMakeFiles/pacer_test_clockstep.dir/tests/shims/clockstep.c.o.d"
  "shims/clockstep.pdb"
  "shims/clockstep.so"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/pacer_test_clockstep.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
