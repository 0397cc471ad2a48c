"""Tests of jaybird.ext.blocking."""
