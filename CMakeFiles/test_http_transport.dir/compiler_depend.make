# Empty compiler generated dependencies file for test_http_transport.
# This may be replaced when dependencies are built.
