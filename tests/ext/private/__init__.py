"""Tests of jaybird.ext.private."""
