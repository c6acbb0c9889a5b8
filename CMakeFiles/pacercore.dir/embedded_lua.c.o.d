CMakeFiles/pacercore.dir/embedded_lua.c.o: /work/wt/i14/embedded_lua.c \
 /usr/include/stdc-predef.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h
