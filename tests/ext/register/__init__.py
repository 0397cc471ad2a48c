"""Tests of jaybird.ext.register."""
