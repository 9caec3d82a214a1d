-- Values that belong to this installation and live with its data, not in the
-- environment: rotating JWT_SECRET or adding a replica must not change them.
-- public_id_key: the HMAC key behind the vehicle ids riders see (server/live/views.py).
CREATE TABLE installation (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
