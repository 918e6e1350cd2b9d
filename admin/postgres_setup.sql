-- One-time setup of the SQLMesh state database on Aurora PostgreSQL, run as the master user
-- (its password is managed in Secrets Manager by the database stack):
--   psql "host=<cluster endpoint> dbname=postgres user=<master> sslmode=require" \
--        -v app_password="'<generated>'" -f admin/postgres_setup.sql
-- The service then connects as `sqlmesh`; store host/port/dbname/username/password in the
-- `aurora-data-operations` secret (README "Production setup").
CREATE ROLE sqlmesh LOGIN PASSWORD :app_password;
CREATE DATABASE sqlmesh_state OWNER sqlmesh;
-- SQLMesh creates its `sqlmesh` schema (state) and meshctl its `meshctl` schema (run history)
-- inside sqlmesh_state; as owner of the database the role may create both, and nothing else.
REVOKE ALL ON DATABASE sqlmesh_state FROM PUBLIC;
