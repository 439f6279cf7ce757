"""The one request path: principal → organization → (IP filter) → policy → object.

Every view, API endpoint and websocket resolves its principal here and reaches tenant objects
only through `policy.access`. Another org's object is indistinguishable from a missing one.
"""
