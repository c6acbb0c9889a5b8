# Empty compiler generated dependencies file for test_coro.
# This may be replaced when dependencies are built.
