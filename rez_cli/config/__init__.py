"""Configuration: where Rez keeps its files, the settings and risk profiles, and where each value
came from."""
