# Empty dependencies file for test_yamlload.
# This may be replaced when dependencies are built.
