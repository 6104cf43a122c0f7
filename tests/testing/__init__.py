"""Tests of refquant.testing: the strategies (meta-tests) and the property checks on buggy and correct candidates."""
