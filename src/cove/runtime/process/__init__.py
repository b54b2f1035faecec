"""The processes that start a container and the messages they exchange."""
