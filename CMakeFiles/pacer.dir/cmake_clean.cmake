file(REMOVE_RECURSE
  "CMakeFiles/pacer.dir/runner/main.c.o"
  "CMakeFiles/pacer.dir/runner/main.c.o.d"
  "pacer"
  "pacer.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/pacer.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
