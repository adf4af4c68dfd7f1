"""Notification service: in-app notifications, e-mail, preferences, WebSocket push and webhooks."""
