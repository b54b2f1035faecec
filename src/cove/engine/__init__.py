"""The engine: one service per resource, used by both the `cove` CLI and the REST API.

Services return Docker's shapes (the JSON of `docker image inspect`, the rows of
`docker images`) so that the edges only print or serialise them.
"""
