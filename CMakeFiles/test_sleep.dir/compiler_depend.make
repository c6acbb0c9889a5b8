# Empty compiler generated dependencies file for test_sleep.
# This may be replaced when dependencies are built.
