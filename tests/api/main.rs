//! Integration tests against a real PostgreSQL: one binary, one module per feature.

mod annotate;
mod browser;
mod csrf;
mod export;
mod helpers;
mod import;
mod roles;
mod rounds;
mod select;
mod train;
