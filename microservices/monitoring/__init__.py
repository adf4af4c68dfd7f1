"""Monitoring service: health of every component, metrics, alerts and dashboard statistics."""
