# Empty dependencies file for pacer.
# This may be replaced when dependencies are built.
