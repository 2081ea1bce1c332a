"""The agent gateway: the mesh's models as one REST API and as MCP tools, for programs and LLM agents.

A stateless process on the worker runtime, registered with capability ``agent-gateway``; run any
number of replicas. See gateway/README.md.
"""
