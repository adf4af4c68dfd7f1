"""Fakes of servers that cannot run here; each follows its protocol contract to the letter."""
