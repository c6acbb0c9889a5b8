CMakeFiles/pacercore.dir/embedded_schema.c.o: \
 /work/wt/i14/embedded_schema.c /usr/include/stdc-predef.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h
