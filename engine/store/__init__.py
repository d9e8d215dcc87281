"""Indicator stores: one interface, an in-memory and a Redis implementation."""
