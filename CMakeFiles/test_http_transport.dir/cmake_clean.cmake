file(REMOVE_RECURSE
  "CMakeFiles/test_http_transport.dir/tests/test_http_transport.c.o"
  "CMakeFiles/test_http_transport.dir/tests/test_http_transport.c.o.d"
  "test_http_transport"
  "test_http_transport.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_http_transport.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
