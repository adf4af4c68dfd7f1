"""Tests of the service registry."""
