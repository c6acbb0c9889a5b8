# Empty compiler generated dependencies file for test_workflow.
# This may be replaced when dependencies are built.
