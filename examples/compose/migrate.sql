-- The example's migration, run by cinit before the app's workers start
-- (CINIT_PRESTART in docker-compose.yml). It runs at every container
-- start, so it must be idempotent: a second run changes nothing. With
-- `psql -v ON_ERROR_STOP=1 -1` an error stops it, rolls it back, and psql's
-- exit code (3) stops the container with that code.
create table if not exists items (
    id   serial primary key,
    name text not null unique
);

insert into items (name) values ('hello from the migration')
on conflict (name) do nothing;
