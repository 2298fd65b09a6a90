//! AccessLog: one line per request, WebSocket or SSE stream. (In progress.)
