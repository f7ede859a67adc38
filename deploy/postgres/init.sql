-- First start of the stack's Postgres (docker-compose.yml): the databases next to `analytics`
-- (POSTGRES_DB, where Pipeboard loads): Meltano's shared system database (state) and Metabase's
-- application database.
CREATE DATABASE meltano;
CREATE DATABASE metabase;
