file(REMOVE_RECURSE
  "CMakeFiles/test_exec.dir/tests/test_exec.c.o"
  "CMakeFiles/test_exec.dir/tests/test_exec.c.o.d"
  "test_exec"
  "test_exec.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_exec.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
