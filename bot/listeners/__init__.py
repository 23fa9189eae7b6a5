"""Slack adapters: parse the payload, call the conversation, hand the reply back to Slack."""
