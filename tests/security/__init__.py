"""Tests of what cdomain writes to shared places: file and folder modes, staging folders, paths read from files."""
