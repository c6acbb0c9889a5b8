file(REMOVE_RECURSE
  "CMakeFiles/pacer_luac.dir/cmake/luac.c.o"
  "CMakeFiles/pacer_luac.dir/cmake/luac.c.o.d"
  "pacer_luac"
  "pacer_luac.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/pacer_luac.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
