file(REMOVE_RECURSE
  "CMakeFiles/test_yamlload.dir/tests/test_yamlload.c.o"
  "CMakeFiles/test_yamlload.dir/tests/test_yamlload.c.o.d"
  "test_yamlload"
  "test_yamlload.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_yamlload.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
