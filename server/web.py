"""``GET /`` for a browser: a small landing page until the rider app lives here.

``/`` is also where Traccar Client reports by default; a request that names a
device (``id``) is an OsmAnd report and never reaches this page
(``server/osmand_route.py``).
"""

from __future__ import annotations

from litestar import Response

from server import __version__

LANDING_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bustracker</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}
code{{background:#eee;padding:0 .2em}}
</style>
</head>
<body>
<h1>bustracker</h1>
<p>This server receives the positions of buses and shows them live.</p>
<ul>
<li>Operators: the API is described at <a href="/schema">/schema</a>;
live positions stream from <code>/ws</code> and <code>/v1/live/stream</code>.</li>
<li>A phone as a bus unit: in Traccar Client, set the server URL to this
address and the device identifier to the device's token.</li>
<li>Status: <a href="/health">/health</a>.</li>
</ul>
<p><small>bustracker {version}</small></p>
</body>
</html>
"""


def landing_page() -> Response[str]:
    return Response(
        LANDING_HTML.format(version=__version__),
        status_code=200,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )
