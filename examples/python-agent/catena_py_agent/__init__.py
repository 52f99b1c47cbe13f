"""The catena.agent.v1 contract served from Python with LangChain; see README.md."""
