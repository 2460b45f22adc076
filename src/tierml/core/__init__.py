"""Leaf layer: the concepts every module shares, and the typed errors. Imports nothing internal."""
