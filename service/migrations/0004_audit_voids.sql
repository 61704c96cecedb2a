-- Rows carry an id chosen by the service, so that the answer a row belongs to can be matched
-- to it even when the database stopped answering after the INSERT was sent.
ALTER TABLE audit_events ADD COLUMN event_id uuid;
CREATE UNIQUE INDEX audit_events_event_id_key ON audit_events (event_id);

-- Events whose request was answered with an error (503) while their INSERT's outcome was
-- unknown. The service writes a void for each such id once the database answers again; an
-- id may be voided whether or not its row ever committed. Voided events are not shown.
CREATE TABLE audit_voids (
    event_id  uuid PRIMARY KEY,
    voided_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TRIGGER audit_voids_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_voids
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_voids_no_truncate
    BEFORE TRUNCATE ON audit_voids
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
