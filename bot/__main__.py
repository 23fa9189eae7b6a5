"""Entry point: `python -m bot`."""

import sys

# The Slack adapter and the terminal shell arrive with issue 4; until then say so plainly.
sys.exit("The Slack bot is not built yet (issue 4). The orchestrator library is in orchestrator/.")
