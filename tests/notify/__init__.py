"""Notification rules, delivery and restart safety."""
