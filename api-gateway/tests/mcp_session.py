"""An MCP session with the official Python SDK (`mcp` 2.x from PyPI) against a
running gateway, over streamable HTTP (`/mcp`) or stdio (`kyro-gateway
mcp-stdio`): initialize, list the tools, call each one, and check the errors
a model would see. Run by `api-gateway/tests/mcp.rs`; prints `ok <transport>`
when every check passed, and exits non-zero with the reason otherwise.
"""

import argparse
import asyncio
import sys
from contextlib import asynccontextmanager

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

TOOLS = {
    "record_failure",
    "search_failures",
    "check_action",
    "record_outcome",
    "get_episode",
    "forget_episode",
}

FAILURE = {
    "goal": "run the database migrations before the service starts in docker compose",
    "tool_chain": ["docker", "alembic"],
    "actions_taken": ["docker compose up -d", "alembic upgrade head"],
    "error_trace": "sqlalchemy.exc.OperationalError: could not connect to server: Connection refused. Is the server running on host db and accepting TCP/IP connections on port 5432?",
    "error_class": "network_error",
    "resolution": "add a healthcheck to the db service and depends_on: condition: service_healthy",
}


def check(condition, message):
    if not condition:
        print(f"check failed: {message}", file=sys.stderr)
        sys.exit(1)


@asynccontextmanager
async def session(args):
    if args.transport == "http":
        http = create_mcp_http_client(headers={"X-API-Key": args.key})
        async with http:
            async with streamable_http_client(f"{args.url}/mcp", http_client=http) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as s:
                    yield s
    else:
        params = StdioServerParameters(
            command=args.gateway_bin,
            args=["mcp-stdio", "--url", args.url, "--key", args.key],
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as s:
                yield s


async def call(s, tool, arguments):
    result = await s.call_tool(tool, arguments)
    return result, (result.structured_content or {})


async def run(args):
    async with session(args) as s:
        init = await s.initialize()
        check(init.server_info.name == "kyrodb", f"server name {init.server_info.name!r}")
        listed = await s.list_tools()
        names = {tool.name for tool in listed.tools}
        check(names == TOOLS, f"tools {sorted(names)}")
        for tool in listed.tools:
            check(tool.input_schema.get("type") == "object", f"{tool.name} schema")

        result, body = await call(s, "record_failure", FAILURE)
        check(not result.is_error, f"record_failure: {result}")
        episode_id = body.get("episode_id")
        check(isinstance(episode_id, int), f"episode id in {body}")

        result, body = await call(s, "get_episode", {"episode_id": episode_id})
        check(not result.is_error and body.get("goal") == FAILURE["goal"], f"get_episode: {body}")

        result, body = await call(
            s,
            "check_action",
            {
                "goal": FAILURE["goal"],
                "proposed_action": "alembic upgrade head",
                "tool": "alembic",
            },
        )
        check(not result.is_error, f"check_action: {result}")
        check(body.get("decision") in {"block", "warn"}, f"check_action decision: {body}")

        result, body = await call(
            s, "search_failures", {"query": "migrations cannot reach postgres in compose", "k": 3}
        )
        check(not result.is_error, f"search_failures: {result}")
        check(body["results"][0]["episode_id"] == episode_id, f"search_failures: {body}")

        result, body = await call(
            s, "record_outcome", {"episode_id": episode_id, "outcome": "still_failed"}
        )
        check(not result.is_error and body.get("fix_failures") == 1, f"record_outcome: {body}")

        # Errors a model can act on: the code and the argument at fault.
        bad = dict(FAILURE, error_class="cosmic_rays")
        result, body = await call(s, "record_failure", bad)
        check(result.is_error, f"a bad error_class must fail: {result}")

        short = dict(FAILURE, goal="db")
        result, body = await call(s, "record_failure", short)
        check(result.is_error, "a short goal must fail")
        check(body.get("error", {}).get("field") == "goal", f"field named: {body}")

        result, body = await call(s, "forget_episode", {"episode_id": episode_id})
        check(not result.is_error, f"forget_episode: {result}")
        result, body = await call(s, "get_episode", {"episode_id": episode_id})
        check(result.is_error and body["error"]["code"] == "not_found", f"after forget: {body}")
    print(f"ok {args.transport}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=["http", "stdio"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--gateway-bin", required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
