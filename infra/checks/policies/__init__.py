# Checkov loads external Python checks only from a directory with an __init__.py.
