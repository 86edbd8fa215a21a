//! `build`: a Dockerfile run as the run / modify / commit loop, with a step cache.

pub mod dockerfile;
