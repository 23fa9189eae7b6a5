"""Who may talk to the bot: people of the workspace it is installed in, and of those allowed."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncBoltContext


def acting_team(body: dict[str, Any]) -> str | None:
    """The workspace of the person who acted, not of the workspace receiving the payload.

    In a channel shared with another company (Slack Connect) the envelope names the receiving
    workspace; the event's `user_team` (or `team`), or a click's `user.team_id`, the sender's.
    """
    event = body.get("event")
    if isinstance(event, dict):
        return event.get("user_team") or event.get("team") or body.get("team_id")
    user = body.get("user")
    if isinstance(user, dict) and user.get("team_id"):
        return str(user["team_id"])
    team = body.get("team")
    return str(team["id"]) if isinstance(team, dict) and team.get("id") else None


class Workspaces:
    """The installed workspace (auth.test's team for the bot token) plus ORCH_ALLOWED_TEAMS."""

    def __init__(self, allowed: frozenset[str] = frozenset()) -> None:
        self._allowed = allowed

    def admits(self, body: dict[str, Any], context: AsyncBoltContext) -> bool:
        """Whether the person who sent `body` may ask or decide; unknown teams are refused."""
        authorized = context.authorize_result
        installed = authorized.team_id if authorized is not None else None
        team = acting_team(body)
        return team is not None and (team == installed or team in self._allowed)
