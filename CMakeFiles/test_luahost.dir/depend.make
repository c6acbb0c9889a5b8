# Empty dependencies file for test_luahost.
# This may be replaced when dependencies are built.
