"""The gateway's MCP server: typed tools over the mesh, on stdio (``python -m gateway.mcp``) and on
streamable HTTP at ``/api/v1/mcp`` of every gateway process (:mod:`gateway.mcp.http`)."""

from gateway.mcp.tools import build_mcp_server as build_mcp_server
