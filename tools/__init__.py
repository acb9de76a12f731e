"""The repository's upkeep scripts: not part of the installed package."""
