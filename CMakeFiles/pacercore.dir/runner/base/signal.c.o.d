CMakeFiles/pacercore.dir/runner/base/signal.c.o: \
 /work/wt/i14/runner/base/signal.c /usr/include/stdc-predef.h \
 /work/wt/i14/runner/base/signal.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stdatomic.h
