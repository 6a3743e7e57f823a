"""The warm worker: local jobs forked from one process that imported the libraries once. Standard library only."""
