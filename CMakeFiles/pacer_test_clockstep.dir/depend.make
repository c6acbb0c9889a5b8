# Empty dependencies file for pacer_test_clockstep.
# This may be replaced when dependencies are built.
