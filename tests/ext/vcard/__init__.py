"""Tests of jaybird.ext.vcard."""
