//! The end-to-end suite: the real application over HTTP on a real database,
//! every behaviour checked on SQLite and again on PostgreSQL.

mod helpers;
mod openapi;
mod pages;
mod signin;
