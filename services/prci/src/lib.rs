//! The `prci` command's library: the one-shot check and the replay against full scans (the CLI in main.rs is a thin layer over it).

pub mod check;
pub mod dead_letters;
pub mod replay;
pub mod run;
