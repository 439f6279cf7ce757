"""Live dashboards: websockets that show a dashboard and receive its updates as they commit.

hub        per-process registry of open screens and the fan-out to them
publish    computes an update once per dashboard and hands it to every process
consumers  the websocket endpoint `/ws/dashboards/<uuid>/` (origin, session, policy)
"""

# The uvicorn websocket settings the live endpoint is built for: dashvault.server.run passes
# them to uvicorn.Config, and bench/fanout.py measures with them.
# - No permessage-deflate: updates are small JSON texts. Compressing them costs about 40 KiB
#   of zlib state per screen (measured under uvicorn: 59 KiB per idle socket with it, 21 KiB
#   without) and one compression per screen per update, the very per-recipient work the
#   fan-out design avoids (the text is serialized once and written as is).
# - A small maximum message size: screens send nothing, so the server buffers nothing large
#   for them (uvicorn's default would accept 16 MiB messages).
UVICORN_WS_OPTIONS: dict[str, object] = {"ws_per_message_deflate": False, "ws_max_size": 4096}
