# Empty compiler generated dependencies file for pacercore.
# This may be replaced when dependencies are built.
