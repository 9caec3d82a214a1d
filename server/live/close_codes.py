"""How a live stream ends: WebSocket close codes for the hub, the sessions and both transports.

4000-4999 are the application's own; the rest are RFC 6455's. SSE has no close
code: it ends the stream, and the code only picks the log line and the metric.
"""

from __future__ import annotations

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_LATER = 1013
CLOSE_BAD_REQUEST = 4400
# Also when an operator's sign-in ended or changed on an open stream (signed out,
# new password, new role, account deleted): refresh or sign in, then reconnect.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RATE_LIMITED = 4429
