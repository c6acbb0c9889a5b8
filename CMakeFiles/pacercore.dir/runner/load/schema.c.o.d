CMakeFiles/pacercore.dir/runner/load/schema.c.o: \
 /work/wt/i14/runner/load/schema.c /usr/include/stdc-predef.h \
 /work/wt/i14/runner/load/schema.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h
