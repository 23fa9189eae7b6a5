"""Tool steps in the library, no server needed: the hands file, tiers, {{…}} and plan checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator import ConfigError, StepError, Tier, ToolSpec, fill_arguments, load_hands
from orchestrator._risk import annotated_tier, tool_tier
from orchestrator._tools import check_tool_step, describe_tools, references

CLOCK = ToolSpec(
    name="time.now",
    description="The time in a zone.",
    input_schema={
        "type": "object",
        "properties": {
            "zone": {"type": "string", "description": "IANA zone"},
            "hours": {"type": "integer"},
        },
        "required": ["zone"],
    },
    tier=Tier.READ,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_hands_file_in_the_mcp_clients_format_is_read_with_our_two_keys(
    tmp_path: Path,
) -> None:
    hands = load_hands(
        _write(
            tmp_path,
            json.dumps(
                {
                    "mcpServers": {
                        "files": {
                            "command": "npx",
                            "args": ["-y", "server-files"],
                            "env": {"ROOT": "/srv"},
                            "cwd": "/tmp",
                            "tools": ["read_file"],
                            "tiers": {"read_file": "read"},
                        },
                        "web": {"url": "http://127.0.0.1:9/mcp", "headers": {"X-Key": "k"}},
                    }
                }
            ),
        )
    )
    files, web = hands.mcp_servers["files"], hands.mcp_servers["web"]
    assert (files.command, files.args, files.env, files.cwd) == (
        "npx",
        ["-y", "server-files"],
        {"ROOT": "/srv"},
        "/tmp",
    )
    assert files.tools == ["read_file"]
    assert files.tiers == {"read_file": Tier.READ}
    assert (web.url, web.headers, web.is_stdio) == ("http://127.0.0.1:9/mcp", {"X-Key": "k"}, False)


@pytest.mark.parametrize("text", ["", "  \n", "{}", '{"agents": {}}', '{"mcpServers": {}}'])
def test_an_unset_empty_or_serverless_file_means_no_tools(tmp_path: Path, text: str) -> None:
    assert load_hands(None).mcp_servers == {}
    assert load_hands("").mcp_servers == {}
    assert load_hands(_write(tmp_path, text)).mcp_servers == {}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{not json", "not JSON: Expecting property name enclosed in double quotes at line 1"),
        ('{"mcpServer": {}}', "mcpServer: Extra inputs are not permitted"),
        ('{"mcpServers": {"a": {"command": "x", "timeout": 3}}}', "mcpServers.a.timeout: Extra"),
        ('{"mcpServers": {"a": {"command": "x", "tiers": {"t": "bad"}}}}', "mcpServers.a.tiers.t"),
        ('{"mcpServers": {"a": {}}}', 'give either "command" (a stdio server) or "url"'),
        ('{"mcpServers": {"a": {"url": "ftp://x"}}}', '"url" must be an http(s) URL'),
        ('{"mcpServers": {"a.b": {"command": "x"}}}', "name 'a.b' must be letters, digits"),
    ],
)
def test_a_bad_hands_file_is_one_line_naming_the_file_and_what_is_wrong(
    tmp_path: Path, text: str, said: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_hands(path)
    [line] = caught.value.reason.splitlines()
    assert line.startswith(f"ORCH_MCP_CONFIG ({path}): ")
    assert said in line


def test_a_missing_hands_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ORCH_MCP_CONFIG \(.*nope.json\): cannot read it"):
        load_hands(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("read_only", "destructive", "open_world", "tier"),
    [
        (None, None, None, Tier.DESTRUCTIVE),  # no annotations: the spec's defaults
        (True, None, None, Tier.READ),
        (True, True, True, Tier.READ),  # read-only wins: the other hints do not apply
        (False, None, None, Tier.DESTRUCTIVE),
        (False, True, False, Tier.DESTRUCTIVE),
        (False, False, None, Tier.EXTERNAL),  # open world by default
        (False, False, True, Tier.EXTERNAL),
        (False, False, False, Tier.WRITE),
        (None, False, False, Tier.WRITE),
    ],
)
def test_a_tools_floor_reads_its_annotations_with_the_specs_defaults(
    read_only: bool | None, destructive: bool | None, open_world: bool | None, tier: Tier
) -> None:
    hints = {"read_only": read_only, "destructive": destructive, "open_world": open_world}
    assert annotated_tier(**hints) is tier


@pytest.mark.parametrize("proposed", [None, "read", "write", "external", "destructive", "junk"])
def test_the_llm_may_raise_a_tools_tier_but_never_lower_it(proposed: str | None) -> None:
    tier = tool_tier(Tier.WRITE, proposed, is_fixed=False)
    assert tier.rank >= Tier.WRITE.rank
    if proposed in ("external", "destructive", "junk"):
        assert tier is Tier(proposed if proposed != "junk" else "destructive")


@pytest.mark.parametrize("proposed", [None, "read", "destructive"])
def test_the_operators_tier_is_the_final_word(proposed: str | None) -> None:
    assert tool_tier(Tier.READ, proposed, is_fixed=True) is Tier.READ
    assert tool_tier(Tier.DESTRUCTIVE, proposed, is_fixed=True) is Tier.DESTRUCTIVE


def test_references_in_string_values_are_filled_with_the_outputs_of_those_steps() -> None:
    text = json.dumps(
        {"zone": "{{s1}}", "note": "from {{ s2 }} and {{s1}}", "deep": [{"x": "{{s2}}"}], "n": 3}
    )
    outputs = {"s1": "Europe/Paris", "s2": 'says "hi" {{s3}}'}
    assert fill_arguments(text, outputs) == {
        "zone": "Europe/Paris",
        "note": 'from says "hi" {{s3}} and Europe/Paris',  # an output is never filled again
        "deep": [{"x": 'says "hi" {{s3}}'}],
        "n": 3,
    }


def test_a_reference_to_a_step_without_an_output_yet_stays_as_written() -> None:
    filled = fill_arguments('{"a": "{{s9}}", "b": "{{s1}}"}', {"s1": None})
    assert filled == {"a": "{{s9}}", "b": ""}


@pytest.mark.parametrize("text", ["[1, 2]", "not json", '"zone"'])
def test_arguments_that_are_not_one_json_object_are_a_step_error(text: str) -> None:
    with pytest.raises(StepError):
        fill_arguments(text, {})


def test_references_are_found_only_in_string_values() -> None:
    arguments = {"{{k}}": 1, "a": ["{{s1}}", {"b": "x {{s2}}"}], "c": 3, "d": "{{}}"}
    assert references(arguments) == {"s1", "s2"}


def test_a_tool_step_is_checked_for_its_tool_its_json_its_references_and_its_schema() -> None:
    def check(tool: ToolSpec | None, arguments: str, deps: tuple[str, ...] = ()) -> str | None:
        return check_tool_step("s2", tool, "time.now", arguments, deps)

    assert check(CLOCK, '{"zone": "UTC"}') is None
    assert check(CLOCK, '{"zone": "{{s1}}"}', ("s1",)) is None
    assert "not one of the tools listed" in (check(None, '{"zone": "UTC"}') or "")
    assert "not JSON" in (check(CLOCK, "{zone: UTC}") or "")
    stranger = check(CLOCK, '{"zone": "{{s1}}"}') or ""
    assert "uses the output of s1; add it to depends_on" in stranger
    wrong = check(CLOCK, '{"hours": "three"}') or ""
    assert "the arguments do not fit time.now" in wrong
    assert "'zone' is a required property" in wrong
    assert "hours: 'three' is not of type 'integer'" in wrong


def test_the_planners_prompt_lists_each_tool_with_its_tier_and_arguments() -> None:
    listed = describe_tools([CLOCK])
    assert listed.splitlines() == [
        "- time.now (tier read): The time in a zone.",
        "  arguments:",
        "    zone (string, required): IANA zone",
        "    hours (integer, optional)",
    ]
    assert describe_tools([]) == "none"
