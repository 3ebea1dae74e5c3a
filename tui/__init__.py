"""The Textual dashboard and the command-line entry point. Imports `engine`, never the reverse."""
