-- Sign-ins that end when they should (docs/decisions.md D55, D56).
-- One row per sign-in (a refresh token family). Access tokens name their family
-- too, so a sign-in that ends here ends for them at their next request. Each
-- refresh replaces current_jti; presenting any other jti of the family is a
-- reuse and deletes the row. Signing out, a new password and deleting the
-- user delete it too.
-- expires_at: epoch seconds, so both stores share the SQL.
CREATE TABLE sessions (
    family       text PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    current_jti  text NOT NULL,
    expires_at   bigint NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
