"""The MCP tools' schemas and error shape, through the SDK's in-process client (no mesh needed)."""

from __future__ import annotations

import asyncio

from mcp import Client

from gateway.mcp.tools import build_mcp_server


def test_tools_are_typed_and_errors_carry_the_envelope_code() -> None:
    server = build_mcp_server(lambda: None)  # a gateway still starting

    async def session():
        async with Client(server) as client:
            tools = (await client.list_tools()).tools
            starting = await client.call_tool("list_models", {})
            no_box = await client.call_tool("dock", {"protein_pdb": "ATOM", "ligand_smiles": "CCO"})
            return tools, starting, no_box

    tools, starting, no_box = asyncio.run(session())
    by_name = {t.name: t for t in tools}
    schema = by_name["find_splice_sites"].input_schema
    assert schema["required"] == ["dna"] and schema["properties"]["threshold"]["maximum"] == 1
    assert by_name["embed_sequences"].input_schema["properties"]["sequence_type"]["enum"] == ["protein", "antibody"]
    assert all(t.description for t in tools)
    assert starting.is_error and starting.structured_content["error"]["code"] == "MODEL_NOT_LOADED"
    assert starting.content[0].text.startswith("MODEL_NOT_LOADED (503)")
    assert no_box.is_error and no_box.structured_content["error"]["code"] == "INVALID_REQUEST"
