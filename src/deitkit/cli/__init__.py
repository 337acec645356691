"""The `deitkit` command line: thin click commands over the library."""
