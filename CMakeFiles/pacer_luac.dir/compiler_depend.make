# Empty compiler generated dependencies file for pacer_luac.
# This may be replaced when dependencies are built.
