"""The Slack adapter over the orchestrator (slack-bolt, async)."""
