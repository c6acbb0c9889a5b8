file(REMOVE_RECURSE
  "CMakeFiles/test_luahost.dir/tests/test_luahost.c.o"
  "CMakeFiles/test_luahost.dir/tests/test_luahost.c.o.d"
  "test_luahost"
  "test_luahost.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_luahost.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
