//! Dockerfiles: parsing, variable expansion and `.dockerignore`, with docker's rules.

pub mod ast;
pub mod expand;
pub mod ignore;
pub mod parse;

pub use parse::{parse, ParseError};
