"""Figures drawn in the core (numpy + PIL), never through Qt."""
