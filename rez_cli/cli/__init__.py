"""The command line: parses, calls the core, renders. Holds no logic a test would call without it."""
