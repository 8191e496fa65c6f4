"""Blast radius (issue 23): what work runs on a node an alert is about, and who owns it."""
