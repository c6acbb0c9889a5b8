file(REMOVE_RECURSE
  "CMakeFiles/test_workflow.dir/tests/test_workflow.c.o"
  "CMakeFiles/test_workflow.dir/tests/test_workflow.c.o.d"
  "test_workflow"
  "test_workflow.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_workflow.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
