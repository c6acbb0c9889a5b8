# Empty compiler generated dependencies file for pacer_test_slowdns.
# This may be replaced when dependencies are built.
