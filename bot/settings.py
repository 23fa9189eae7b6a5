"""Settings from the environment or `.env`; a bad value stops start-up with one line naming it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator import HandsConfig, OrchestratorConfig, Redactor, SandboxMode, load_hands

CommaSet = Annotated[frozenset[str], NoDecode]


class SettingsError(Exception):
    """One line per bad setting, each naming it and saying how to fix it."""


class Settings(BaseSettings):
    """Every setting in DESIGN.md's table; names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = Field(3000, ge=0, le=65535)  # 0: any free port (tests)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    orch_model: str = "gpt-4o-mini"
    database_url: str = "sqlite:///orchestrator.db"
    orch_approvers: CommaSet = frozenset()
    orch_allowed_teams: CommaSet = frozenset()
    orch_shell_allow: CommaSet = frozenset()
    orch_shell_sandbox: Literal["auto", "bwrap", "none"] = "auto"
    orch_max_steps: int = Field(12, ge=1, le=40)
    orch_max_parallel: int = Field(4, ge=1, le=64)
    orch_step_timeout_s: float = Field(300.0, gt=0)
    orch_max_replans: int = Field(2, ge=0, le=10)
    orch_confirm_timeout_s: float = Field(900.0, gt=0)
    orch_token_budget: int = Field(200_000, ge=1)
    orch_task_timeout_s: float = Field(3600.0, gt=0)
    orch_notify_user_mentions: bool = False
    orch_planning_timeout_s: float = Field(600.0, gt=0)
    orch_mcp_config: str | None = None  # the hands file: MCP servers and coding agents
    # Replicas on PostgreSQL: a heartbeat this often; older than the lease, a replica is dead.
    orch_heartbeat_s: float = Field(5.0, gt=0)
    orch_lease_ttl_s: float = Field(30.0, gt=0)

    @field_validator("orch_approvers", "orch_allowed_teams", "orch_shell_allow", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        # slack_sdk joins method names onto the base URL, so it must end with a slash.
        return value if value.endswith("/") else value + "/"

    @field_validator("openai_base_url", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return value or None

    @model_validator(mode="after")
    def _beats_within_half_a_lease(self) -> Settings:
        # A replica stops work once its last good beat is half a lease old: two beats must fit.
        if self.orch_heartbeat_s * 2 >= self.orch_lease_ttl_s:
            raise ValueError(
                "ORCH_HEARTBEAT_S must be under half of ORCH_LEASE_TTL_S "
                f"({self.orch_heartbeat_s:g}s against {self.orch_lease_ttl_s:g}s)"
            )
        return self

    @property
    def is_socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def orchestrator_config(self) -> OrchestratorConfig:
        """The library's limits from these settings."""
        return OrchestratorConfig(
            model=self.orch_model,
            max_steps=self.orch_max_steps,
            max_parallel=self.orch_max_parallel,
            step_timeout_s=self.orch_step_timeout_s,
            max_replans=self.orch_max_replans,
            confirm_timeout_s=self.orch_confirm_timeout_s,
            # Every step of the first plan and of each replan may run once.
            step_budget=self.orch_max_steps * (self.orch_max_replans + 1),
            token_budget=self.orch_token_budget,
            task_timeout_s=self.orch_task_timeout_s,
            planning_timeout_s=self.orch_planning_timeout_s,
            shell_allow=self.orch_shell_allow,
            shell_sandbox=SandboxMode(self.orch_shell_sandbox),
            approvers=self.orch_approvers,
            redactor=self.redactor(),
            heartbeat_s=self.orch_heartbeat_s,
            lease_ttl_s=self.orch_lease_ttl_s,
        )

    def hands(self) -> HandsConfig:
        """The file ORCH_MCP_CONFIG names (empty when unset); `ConfigError` naming what is wrong."""
        return load_hands(self.orch_mcp_config)

    def redactor(self) -> Redactor:
        """Masks the value of every secret setting (tokens, signing secret, keys)."""
        values = (getattr(self, name) for name in type(self).model_fields)
        return Redactor(frozenset(v.get_secret_value() for v in values if isinstance(v, SecretStr)))

    def slack_problems(self) -> list[str]:
        """What stops the Slack bot from starting, one line each."""
        problems = []
        bot = self.slack_bot_token.get_secret_value() if self.slack_bot_token else ""
        if not bot.startswith("xoxb-"):
            problems.append(
                "SLACK_BOT_TOKEN: missing or not a bot token; copy the xoxb-… token from "
                "OAuth & Permissions into .env"
            )
        app = self.slack_app_token.get_secret_value() if self.slack_app_token else None
        if app is not None and not app.startswith("xapp-"):
            problems.append(
                "SLACK_APP_TOKEN: not an app-level token; create one (xapp-…) with "
                "connections:write under Basic Information, or leave it empty for HTTP mode"
            )
        if app is None and not self.slack_signing_secret:
            problems.append(
                "SLACK_SIGNING_SECRET: HTTP mode needs it (Basic Information → Signing Secret); "
                "or set SLACK_APP_TOKEN to use Socket Mode"
            )
        return problems

    def llm_problems(self) -> list[str]:
        """What stops the LLM from being reached, one line each."""
        if self.openai_api_key is None and self.openai_base_url is None:
            return ["OPENAI_API_KEY: missing; put your key in .env (or set OPENAI_BASE_URL)"]
        return []


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; `SettingsError` lists every bad one."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            name = str(e["loc"][0]).upper() if e["loc"] else "settings"
            # Never echo what a secret was set to.
            got = "" if _is_secret(name) else f" (got {e.get('input')!r})"
            lines.append(f"{name}: {e['msg']}{got}; set it in .env or the environment")
        raise SettingsError("\n".join(lines)) from None


def _is_secret(name: str) -> bool:
    return any(word in name for word in ("TOKEN", "SECRET", "KEY"))
