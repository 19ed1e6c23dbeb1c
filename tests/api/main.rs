//! Integration tests against a real PostgreSQL: one binary, one module per feature.

mod analyze_api;
mod annotate;
mod assist;
mod audit;
mod browser;
mod csrf;
mod export;
mod fuzz;
mod helpers;
mod hosts;
mod import;
mod jobs;
mod layers;
mod lighter;
mod login;
mod loop_cycles;
mod pretrain;
mod promotion;
mod qa;
mod roles;
mod rounds;
mod security;
mod select;
mod simulate;
mod train;
mod training_pages;
