// Package faultinjection holds the fault-injection suite (its tests only):
// a real segmentd process under load while the test kills it (SIGKILL),
// stops its NATS server and crashes its PostgreSQL (a private cluster the
// test starts with initdb/pg_ctl), then checks that no acknowledged event is
// lost, nothing is duplicated on SEGMENTS_EVENTS or SEGMENTS_ALERTS, the API
// answers 503 (never 500, never a hang) while the database is down, and
// /readyz is ready again within 2 s of the database's return.
package faultinjection
