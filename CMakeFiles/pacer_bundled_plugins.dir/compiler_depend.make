# Empty custom commands generated dependencies file for pacer_bundled_plugins.
# This may be replaced when dependencies are built.
